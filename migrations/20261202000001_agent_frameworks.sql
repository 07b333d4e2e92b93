-- Frameworks beyond our own kernels that agents measure with (issue 8): a third kind,
-- `runtime` (another runtime, e.g. ncnn or ONNX Runtime, driven by the agent on the same blocks;
-- campaigns may target it, and imports under its name stay allowed), and what each agent
-- reports it can run.
ALTER TABLE frameworks DROP CONSTRAINT frameworks_kind_check;
ALTER TABLE frameworks ADD CONSTRAINT frameworks_kind_check
    CHECK (kind IN ('native', 'runtime', 'imported'));

-- The agent's last report, `[{name, version, available, detail?}]`, from enrollment and every
-- heartbeat that carries one; NULL when it never reported (agents older than the report,
-- which run only the native kernels).
ALTER TABLE agents ADD COLUMN frameworks jsonb
    CHECK (frameworks IS NULL OR jsonb_typeof(frameworks) = 'array');
ALTER TABLE agents ADD COLUMN frameworks_reported_at timestamptz;
