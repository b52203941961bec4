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

-- Health and resume point of one user's sync with one service.
CREATE TABLE qsl_sync_state (
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    service         text NOT NULL CHECK (service IN ('lotw', 'eqsl')),
    cursor          text,          -- LoTW: APP_LoTW_LASTQSL; eQSL: RcvdSince (YYYYMMDDHHMM)
    next_due_at     timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_success_at timestamptz,
    failures        integer NOT NULL DEFAULT 0,  -- in a row, for the backoff
    last_error      text,          -- in plain words, for the user; NULL after a success
    last_new        integer NOT NULL DEFAULT 0,  -- the last successful run's counts
    last_matched    integer NOT NULL DEFAULT 0,
    last_unmatched  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, service)
);
CREATE INDEX qsl_sync_state_due ON qsl_sync_state (next_due_at);

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
