-- ADIF import jobs: problems that did not stop a record from being stored (a value cut to fit, a
-- repeated field, a LoTW report without its end marker) are reported beside the rejects.
ALTER TABLE import_jobs ADD COLUMN warnings jsonb NOT NULL DEFAULT '[]';
ALTER TABLE import_jobs ADD COLUMN warning_count bigint NOT NULL DEFAULT 0;
