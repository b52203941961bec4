-- Timed syncs (issue 17): scheduler state, the callbook's staging swap, solar data, member DNS records.

-- Scheduler state per job: shown at GET /api/sync and /metrics. A per-user job (e.g. 'lotw:W1AW')
-- names its owner so it goes with the user and is shown to that user only.
ALTER TABLE sync_state
    ADD COLUMN owner_id      bigint REFERENCES users(id) ON DELETE CASCADE,
    ADD COLUMN next_run_at   timestamptz,
    ADD COLUMN last_error_at timestamptz,
    ADD COLUMN failures      integer NOT NULL DEFAULT 0,  -- failed runs since the last success
    ADD COLUMN summary       text,                        -- what the last successful run did, in words
    ADD COLUMN duration_s    double precision,            -- how long the last run took
    ADD COLUMN node          text;                        -- which process ran it last

-- Who may own member DNS records: admin-created users (`hamsrv user add`) and verified ones
-- (trust 'medium' or 'high'). The identity work may add more levels; this column is only read here.
ALTER TABLE users ADD COLUMN trust text NOT NULL DEFAULT 'admin-created';

-- The callbook is replaced whole by the weekly FCC file: it is loaded into a staging table and swapped
-- in by renaming, so lookups never wait on the import. The email is kept for the FCC-email code only.
ALTER TABLE callbook ADD COLUMN email text, ADD COLUMN entity_name text, ADD COLUMN middle_initial text;
-- Licences in a transaction file replace the callbook row with the same USI.
CREATE INDEX callbook_usi ON callbook (usi);

-- The newest NOAA SWPC readings (one row), for GET /api/solar and the propagation estimate.
CREATE TABLE solar_latest (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    flux       double precision,  -- 10.7 cm solar flux, sfu
    flux_time  timestamptz,
    kp         double precision,  -- planetary K index, 3-hourly
    kp_time    timestamptz,
    ssn        double precision,  -- monthly sunspot number
    ssn_month  date,
    fetched_at timestamptz NOT NULL DEFAULT now()
);

-- Member DNS records: each owned by a user, kept in PowerDNS by the pdns sync.
ALTER TABLE dns_records
    ADD COLUMN owner_id   bigint REFERENCES users(id) ON DELETE CASCADE,
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX dns_records_owner ON dns_records (owner_id);
