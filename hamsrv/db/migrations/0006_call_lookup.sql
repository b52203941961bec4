-- "Have I worked this station?" (GET /api/qsos?call=, the logbook search) walked every QSO of the
-- owner after 0003 dropped the (owner_id, call) index. This one answers it from a few index entries,
-- already in time order (the search sorts by start_minute first), so the planner never prefers a
-- backward walk of the dedupe index filtered by call. Measured with bench.ingest: the import's speed is
-- reported against raw COPY into a table with these same indexes.
CREATE INDEX qsos_owner_call ON qsos (owner_id, call, start_minute);

-- A LoTW merge updates QSL fields of QSOs spread all over the table. A bulk COPY fills heap pages to
-- the brim, so each such update wrote the row to another page and added an entry to every index
-- (47 us a row, measured on 20,000 merged QSOs of a 1,000,000-QSO logbook). With room left on each
-- page the update stays on the page and touches no index (HOT): 4 us a row. Applies to new pages.
ALTER TABLE qsos SET (fillfactor = 90);
