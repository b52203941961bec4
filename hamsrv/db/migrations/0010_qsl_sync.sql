-- QSL confirmations from LoTW and eQSL, per user (issue 18).

-- Each user's login for a QSL service. `secret` is AES-GCM ciphertext of {"username", "password"}
-- (hamsrv/identity/vault.py); the plain text is never stored and never returned.
CREATE TABLE qsl_accounts (
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service    text NOT NULL CHECK (service IN ('lotw', 'eqsl')),
    secret     bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, service)
);

-- Each user's sync with a service is a scheduler job named '<service>:<CALL>' (e.g. 'lotw:W1AW'): its
-- health is the job's row in sync_state (migration 0009); its resume point is that row's `cursor`
-- (LoTW: APP_LoTW_LASTQSL; eQSL: RcvdSince) and its last run's counts are in `details`.

-- Every confirmation received, matched to a QSO of the log or not (yet): kept, shown, matched again
-- at each sync so a QSO logged later still gets its confirmation.
CREATE TABLE qsl_confirmations (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service     text NOT NULL CHECK (service IN ('lotw', 'eqsl')),
    call        text NOT NULL,
    start_at    timestamptz NOT NULL,
    band        text,
    mode        text,
    mode_group  text,
    qsl_date    date,
    fields      jsonb NOT NULL DEFAULT '{}',  -- the record as received
    qso_id      bigint REFERENCES qsos(id) ON DELETE SET NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    matched_at  timestamptz
);
-- The same confirmation downloaded again (LoTW repeats the newest one, eQSL overlaps) is not new.
CREATE UNIQUE INDEX qsl_confirmations_once
    ON qsl_confirmations (user_id, service, call, start_at, coalesce(band, ''), coalesce(mode, ''));
CREATE INDEX qsl_confirmations_unmatched ON qsl_confirmations (user_id, service) WHERE qso_id IS NULL;
CREATE INDEX qsl_confirmations_qso ON qsl_confirmations (qso_id) WHERE qso_id IS NOT NULL;

-- "N new LoTW confirmations": shown to the user (GET /api/qsl/status) until they mark them seen.
CREATE TABLE qsl_notifications (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service    text NOT NULL,
    message    text NOT NULL,
    new_count  integer NOT NULL,
    matched    integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz
);
CREATE INDEX qsl_notifications_unseen ON qsl_notifications (user_id, created_at DESC) WHERE seen_at IS NULL;
