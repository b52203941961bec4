-- Import jobs (issue 14): a merge counts the QSOs it found already up to date apart from duplicates;
-- the first duplicates are listed with their record numbers, as rejects are; an upload sent with an
-- Idempotency-Key keeps the SHA-256 of its request (query and file), so the key reused for another
-- upload is refused instead of answered with this job.
ALTER TABLE import_jobs ADD COLUMN up_to_date bigint NOT NULL DEFAULT 0;
ALTER TABLE import_jobs ADD COLUMN duplicate_records jsonb NOT NULL DEFAULT '[]';
ALTER TABLE import_jobs ADD COLUMN upload_sha256 bytea;
