-- The whole gpulut schema, designed as one piece (DESIGN sections 3, 5, 6, 7).
--
-- Conventions:
-- * every table has created_at and updated_at; a trigger keeps updated_at true;
-- * secrets (API keys, enrollment and agent tokens) are stored only as SHA-256 digests, with a
--   short non-secret prefix so people can tell them apart in listings;
-- * states are text with CHECK constraints (readable in psql, easy to extend by migration);
-- * queues (jobs, searches) have partial indexes on their claimable rows, used with
--   FOR UPDATE SKIP LOCKED.

CREATE FUNCTION gpulut_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Credentials of people and scripts. The bootstrap admin token comes from the environment
-- and has no row here.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    label         text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('admin', 'user')),
    prefix        text NOT NULL,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_by    uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Search spaces: the validated spec and its reference networks, as registered.
CREATE TABLE spaces (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,63}$'),
    spec          jsonb NOT NULL,
    "references"  jsonb,
    builtin       boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The distinct blocks of each space. A block key is global (the same key in two spaces is the
-- same computation), so table entries are keyed by block key alone and a space's table is the
-- join of its blocks with the entries.
CREATE TABLE space_blocks (
    space         text NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    block_key     text NOT NULL,
    part          text NOT NULL CHECK (part IN ('stem', 'choice', 'head')),
    position      integer NOT NULL,
    block         jsonb NOT NULL,
    params        bigint NOT NULL CHECK (params >= 0),
    macs          bigint NOT NULL CHECK (macs >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space, block_key)
);
CREATE INDEX space_blocks_key ON space_blocks (block_key);

-- Software that runs blocks: our own kernels (`native`) or another tool's numbers (`imported`).
CREATE TABLE frameworks (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    kind          text NOT NULL CHECK (kind IN ('native', 'imported')),
    description   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One physical phone or GPU. `identity` is derived from the fingerprint (hardware id and GPU
-- ids) so that re-enrolling the same device keeps its id and history.
CREATE TABLE devices (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    identity      text NOT NULL UNIQUE,
    fingerprint   jsonb NOT NULL,
    labels        text[] NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline', 'retired')),
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_labels ON devices USING gin (labels);

CREATE TABLE enrollment_tokens (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    label          text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    prefix         text NOT NULL,
    token_sha256   bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    device_labels  text[] NOT NULL DEFAULT '{}',
    max_uses       integer NOT NULL CHECK (max_uses > 0),
    uses           integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    created_by     uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- An enrolled agent process acting for one device.
CREATE TABLE agents (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id            uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    enrollment_token_id  uuid REFERENCES enrollment_tokens (id) ON DELETE SET NULL,
    name                 text NOT NULL,
    prefix               text NOT NULL,
    token_sha256         bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    agent_version        text NOT NULL,
    last_heartbeat_at    timestamptz,
    revoked_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_device ON agents (device_id);

-- "Profile space S on devices D with frameworks F under protocol P"; expands into jobs.
CREATE TABLE campaigns (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    space            text NOT NULL REFERENCES spaces (name),
    device_selector  jsonb NOT NULL,
    frameworks       text[] NOT NULL CHECK (cardinality(frameworks) > 0),
    protocol         jsonb NOT NULL,
    validation       jsonb,
    options          jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    failure_reason   text,
    created_by       uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_state ON campaigns (state, created_at);

-- A batch of blocks or whole networks for one device and framework. Leases fence uploads:
-- a result is accepted only for the current (attempt, lease_id).
CREATE TABLE jobs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id       uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    device_id         uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    framework         text NOT NULL REFERENCES frameworks (id),
    kind              text NOT NULL CHECK (kind IN ('blocks', 'networks')),
    payload           jsonb NOT NULL,
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'leased', 'done', 'failed', 'cancelled')),
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    lease_id          uuid,
    leased_by         uuid REFERENCES agents (id) ON DELETE SET NULL,
    lease_expires_at  timestamptz,
    last_error        text,
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'leased') = (lease_id IS NOT NULL AND lease_expires_at IS NOT NULL))
);
CREATE INDEX jobs_claimable ON jobs (device_id, created_at) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'leased';
CREATE INDEX jobs_campaign ON jobs (campaign_id, state);

-- One timed series of one block or whole network on one device with one framework. Raw
-- samples are kept; table entries are derived from them. (job_id, attempt, kind, key) makes
-- uploads idempotent.
CREATE TABLE measurements (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id          uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    framework          text NOT NULL REFERENCES frameworks (id),
    framework_version  text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('block', 'network')),
    -- block key, or the architecture's canonical text for networks
    key                text NOT NULL,
    space              text REFERENCES spaces (name),
    job_id             uuid REFERENCES jobs (id) ON DELETE SET NULL,
    attempt            integer,
    agent_id           uuid REFERENCES agents (id) ON DELETE SET NULL,
    source             text NOT NULL DEFAULT 'agent' CHECK (source IN ('agent', 'import')),
    samples_ms         double precision[] NOT NULL CHECK (cardinality(samples_ms) > 0),
    warmup_runs        integer NOT NULL DEFAULT 0 CHECK (warmup_runs >= 0),
    timer              text NOT NULL CHECK (timer IN ('gpu-timestamp', 'wall', 'external')),
    verified           boolean NOT NULL,
    max_abs_error      double precision,
    pipeline_ms        double precision,
    agent_version      text,
    kernel_version     text,
    environment        jsonb NOT NULL DEFAULT '{}',
    measured_at        timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, attempt, kind, key)
);
CREATE INDEX measurements_series ON measurements (device_id, framework, kind, key);

-- The latency table: statistics of all samples of a block on a (device, framework), rebuilt
-- as measurements land.
CREATE TABLE table_entries (
    device_id          uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    framework          text NOT NULL REFERENCES frameworks (id),
    block_key          text NOT NULL,
    framework_version  text NOT NULL,
    count              integer NOT NULL CHECK (count > 0),
    min_ms             double precision NOT NULL,
    p10_ms             double precision NOT NULL,
    median_ms          double precision NOT NULL,
    p90_ms             double precision NOT NULL,
    mean_ms            double precision NOT NULL,
    iqr_ms             double precision NOT NULL,
    mad_ms             double precision NOT NULL,
    ci_low_ms          double precision,
    ci_high_ms         double precision,
    stale              boolean NOT NULL DEFAULT false,
    first_measured_at  timestamptz NOT NULL,
    last_measured_at   timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, framework, block_key)
);
CREATE INDEX table_entries_key ON table_entries (block_key);

-- How well summed blocks predict whole networks, and the fitted correction, per table.
CREATE TABLE calibrations (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    framework   text NOT NULL REFERENCES frameworks (id),
    space       text NOT NULL REFERENCES spaces (name),
    model       jsonb NOT NULL,
    report      jsonb NOT NULL,
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, framework, space)
);

-- (architecture, top-1) pairs uploaded for the `samples` accuracy evaluator, with the fitted
-- surrogate and its cross-validated report.
CREATE TABLE accuracy_sample_sets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    space       text NOT NULL REFERENCES spaces (name),
    label       text NOT NULL,
    samples     jsonb NOT NULL,
    surrogate   jsonb,
    report      jsonb,
    created_by  uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One NSGA-II run. Workers claim queued rows with SKIP LOCKED and heartbeat them; a running
-- search with a stale heartbeat is resumed from its checkpoint by another worker.
CREATE TABLE searches (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    space             text NOT NULL REFERENCES spaces (name),
    request           jsonb NOT NULL,
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    generation        integer NOT NULL DEFAULT 0 CHECK (generation >= 0),
    evaluations       bigint NOT NULL DEFAULT 0 CHECK (evaluations >= 0),
    cancel_requested  boolean NOT NULL DEFAULT false,
    worker_id         text,
    heartbeat_at      timestamptz,
    failure_reason    text,
    created_by        uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX searches_claimable ON searches (created_at) WHERE state = 'queued';
CREATE INDEX searches_running ON searches (heartbeat_at) WHERE state = 'running';

-- The last checkpoint of a search (population, RNG state, history): enough to resume it
-- bit for bit.
CREATE TABLE search_checkpoints (
    search_id   uuid PRIMARY KEY REFERENCES searches (id) ON DELETE CASCADE,
    generation  integer NOT NULL CHECK (generation >= 0),
    state       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The current Pareto front of a search, with its hypervolume history.
CREATE TABLE search_fronts (
    search_id   uuid PRIMARY KEY REFERENCES searches (id) ON DELETE CASCADE,
    generation  integer NOT NULL CHECK (generation >= 0),
    front       jsonb NOT NULL,
    history     jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'spaces', 'space_blocks', 'frameworks', 'devices',
        'enrollment_tokens', 'agents', 'campaigns', 'jobs', 'measurements', 'table_entries',
        'calibrations', 'accuracy_sample_sets', 'searches', 'search_checkpoints', 'search_fronts']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION gpulut_set_updated_at()',
                       t || '_updated_at', t);
    END LOOP;
END;
$$;
