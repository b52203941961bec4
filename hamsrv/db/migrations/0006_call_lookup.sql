-- "Have I worked this station?" (GET /api/qsos?call=, the logbook search) walked every QSO of the
-- owner after 0003 dropped the (owner_id, call) index. This one answers it from a few index entries,
-- already in time order (the search sorts by start_minute first), so the planner never prefers a
-- backward walk of the dedupe index filtered by call. Measured with bench.ingest: the import's speed is
-- reported against raw COPY into a table with these same indexes.
CREATE INDEX qsos_owner_call ON qsos (owner_id, call, start_minute);
