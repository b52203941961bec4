-- hamsrv schema, version 1. Column names follow ADIF (lower case) so export is lossless.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    callsign    text NOT NULL UNIQUE CHECK (callsign = upper(callsign) AND callsign <> ''),
    email       text,
    trust_level smallint NOT NULL DEFAULT 0,
    roles       text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE,  -- only the hash is stored; the token is shown once
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE TABLE qsos (
    id               bigserial PRIMARY KEY,
    owner_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    call             text NOT NULL,
    start_at         timestamptz NOT NULL,
    end_at           timestamptz,
    band             text,
    band_rx          text,
    mode             text,
    submode          text,
    freq             double precision,  -- MHz, as ADIF
    freq_rx          double precision,
    rst_sent         text,
    rst_rcvd         text,
    gridsquare       text,
    my_gridsquare    text,
    station_callsign text,
    operator         text,
    dxcc             integer,
    qsl_sent         text,
    qsl_rcvd         text,
    qslsdate         date,
    qslrdate         date,
    lotw_qsl_sent    text,
    lotw_qsl_rcvd    text,
    lotw_qslsdate    date,
    lotw_qslrdate    date,
    eqsl_qsl_sent    text,
    eqsl_qsl_rcvd    text,
    eqsl_qslsdate    date,
    eqsl_qslrdate    date,
    extra            jsonb NOT NULL DEFAULT '{}',  -- every other ADIF field, upper-case name -> text
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    start_minute     timestamp GENERATED ALWAYS AS (date_trunc('minute', start_at AT TIME ZONE 'UTC')) STORED
);
-- Dedupe key: the same contact logged twice (ARRL's matching rule: date/time, band, call; mode too).
CREATE UNIQUE INDEX qsos_dedupe ON qsos (owner_id, call, coalesce(band, ''), coalesce(mode, ''), start_minute);
CREATE INDEX qsos_owner_start ON qsos (owner_id, start_at DESC, id DESC);
CREATE INDEX qsos_owner_call ON qsos (owner_id, call);

-- Live QSOs go on the firehose. Bulk imports set hamsrv.quiet=on, and old contacts are not news.
CREATE FUNCTION qso_firehose_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('hamsrv.quiet', true), '') <> 'on'
       AND NEW.start_at > now() - interval '1 hour' THEN
        PERFORM pg_notify('ham_qso_firehose', json_build_object(
            'id', NEW.id, 'call', NEW.call, 'freq', NEW.freq, 'band', NEW.band, 'mode', NEW.mode,
            'start_at', NEW.start_at, 'station_callsign',
            coalesce(NEW.station_callsign, NEW.operator, (SELECT callsign FROM users WHERE id = NEW.owner_id)),
            'gridsquare', NEW.gridsquare, 'rst_sent', NEW.rst_sent)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER qsos_firehose AFTER INSERT ON qsos FOR EACH ROW EXECUTE FUNCTION qso_firehose_notify();

CREATE TABLE callbook (
    callsign       text PRIMARY KEY,
    usi            bigint,
    name           text,
    first_name     text,
    last_name      text,
    street         text,
    city           text,
    state          text,
    zip            text,
    frn            text,
    operator_class text,
    license_status text,
    grant_date     date,
    expire_date    date,
    previous_call  text,
    source         text NOT NULL DEFAULT 'fcc',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dns_zones (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,  -- absolute, with trailing dot
    kind       text NOT NULL DEFAULT 'Native',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dns_records (
    id       bigserial PRIMARY KEY,
    zone_id  bigint NOT NULL REFERENCES dns_zones(id) ON DELETE CASCADE,
    name     text NOT NULL,
    type     text NOT NULL,
    ttl      integer NOT NULL DEFAULT 3600,
    content  text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    UNIQUE (zone_id, name, type, content)
);

CREATE TABLE sync_state (
    name        text PRIMARY KEY,  -- e.g. 'fcc', 'noaa', 'lotw:W1AW'
    last_run_at timestamptz,
    last_ok_at  timestamptz,
    cursor      text,              -- authority-specific resume point (e.g. LoTW's APP_LoTW_LASTQSL)
    status      text NOT NULL DEFAULT 'never',
    error       text,
    details     jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE import_jobs (
    id              bigserial PRIMARY KEY,
    owner_id        bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('receiving', 'queued', 'running', 'done', 'failed')),
    filename        text,
    format          text,
    options         jsonb NOT NULL DEFAULT '{}',
    idempotency_key text,
    size_bytes      bigint NOT NULL DEFAULT 0,
    bytes_done      bigint NOT NULL DEFAULT 0,  -- input offset whose records are committed
    records_read    bigint NOT NULL DEFAULT 0,
    inserted        bigint NOT NULL DEFAULT 0,
    duplicates      bigint NOT NULL DEFAULT 0,
    merged          bigint NOT NULL DEFAULT 0,
    rejected        bigint NOT NULL DEFAULT 0,
    rejects         jsonb NOT NULL DEFAULT '[]',
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    UNIQUE (owner_id, idempotency_key)
);

-- Uploads are stored in the database before the API answers 202, so a job survives a crash.
CREATE TABLE import_chunks (
    job_id bigint NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
    seq    integer NOT NULL,
    data   bytea NOT NULL,
    PRIMARY KEY (job_id, seq)
);
