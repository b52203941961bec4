-- A logged QSO goes out on the firehose with the owner's own callsign as the spotter, as /api/spots
-- does: STATION_CALLSIGN and OPERATOR are whatever the user typed, so using them let anyone spot as
-- another station. (The NOTIFY payload keeps the key name the listener reads.)
CREATE OR REPLACE FUNCTION qso_firehose_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ham_qso_firehose', json_build_object(
        'id', NEW.id, 'call', NEW.call, 'freq', NEW.freq, 'band', NEW.band, 'mode', NEW.mode,
        'start_at', NEW.start_at,
        'station_callsign', (SELECT callsign FROM users WHERE id = NEW.owner_id),
        'gridsquare', NEW.gridsquare, 'rst_sent', NEW.rst_sent)::text);
    RETURN NULL;
END $$;
