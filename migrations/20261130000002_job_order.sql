-- Jobs are handed out in the order their campaign listed them: created_at is equal for all
-- jobs made in one transaction, so order by an identity column instead.
ALTER TABLE jobs ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (device_id, seq) WHERE state = 'queued';
