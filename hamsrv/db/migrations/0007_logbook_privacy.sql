-- A QSO logged in the last hour used to go out on the public firehose with its owner as the spotter,
-- whether the owner wanted that or not. Now it is the owner's choice, off unless they turn it on
-- (PATCH /api/settings {"share_qsos": true}).
ALTER TABLE users ADD COLUMN share_qsos boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION qso_firehose_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner_call text;
BEGIN
    SELECT callsign INTO owner_call FROM users WHERE id = NEW.owner_id AND share_qsos;
    IF owner_call IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('ham_qso_firehose', json_build_object(
        'id', NEW.id, 'call', NEW.call, 'freq', NEW.freq, 'band', NEW.band, 'mode', NEW.mode,
        'start_at', NEW.start_at, 'station_callsign', owner_call,
        'gridsquare', NEW.gridsquare, 'rst_sent', NEW.rst_sent)::text);
    RETURN NULL;
END $$;
