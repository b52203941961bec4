-- Identity (issue 16): sessions, sign-in codes, trust levels, roles, idempotent POSTs, cluster passwords.

-- The FCC ULS EN record's e-mail (field 15): the only address an e-mail sign-in code is ever sent to.
-- (The syncs module fills it; IF NOT EXISTS in case its own migration adds the column too.)
ALTER TABLE callbook ADD COLUMN IF NOT EXISTS email text;

-- trust_level: 0 none, 1 low (QRZ biography token), 2 medium (FCC e-mail code), 3 high (LoTW certificate).
-- Accounts made before this migration were made by the operator by hand: they count as medium.
UPDATE users SET trust_level = 2 WHERE trust_level = 0;
ALTER TABLE users ALTER COLUMN trust_level SET DEFAULT 2,
                  ADD CONSTRAINT users_trust_level CHECK (trust_level BETWEEN 0 AND 3),
                  ADD CONSTRAINT users_roles CHECK (roles <@ ARRAY['admin']::text[]),
                  ADD COLUMN cluster_password text;  -- scrypt hash (see identity/passwords.py), or NULL

-- A signed-in browser or client: only the token's SHA-256 is stored. A session's trust is that of the
-- way it was started (a QRZ sign-in to a LoTW-verified account is still a low-trust session).
CREATE TABLE sessions (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE,
    trust_level  smallint NOT NULL CHECK (trust_level BETWEEN 1 AND 3),
    method       text NOT NULL CHECK (method IN ('lotw', 'email', 'qrz')),
    ip           text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Pending sign-ins by e-mail code or QRZ biography token: one per callsign and method.
-- email: secret_sha256 = SHA-256(salt || code). qrz: public_code is the HAMS- code shown on the page,
-- secret_sha256 = SHA-256(salt || claim), the claim being what only the requester holds.
CREATE TABLE signin_codes (
    callsign      text NOT NULL,
    method        text NOT NULL CHECK (method IN ('email', 'qrz')),
    salt          bytea NOT NULL,
    secret_sha256 bytea NOT NULL,
    public_code   text,
    tries         integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (callsign, method)
);

-- Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header): the first answer to a POST,
-- replayed to a retry with the same key and the same request; status NULL while the first one runs.
CREATE TABLE idempotency_keys (
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key          text NOT NULL,
    fingerprint  bytea NOT NULL,
    status       integer,
    content_type text,
    location     text,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
