//! Campaigns, the job queue with fenced leases, and result ingestion: raw samples stored and
//! table entries recomputed in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gpulut_tables::Summary;
use uuid::Uuid;

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: Uuid,
    pub space: String,
    pub device_selector: serde_json::Value,
    pub frameworks: Vec<String>,
    pub protocol: serde_json::Value,
    pub validation: Option<serde_json::Value>,
    pub state: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

macro_rules! campaign_columns {
    () => {
        "id, space, device_selector, frameworks, protocol, validation, state, failure_reason, created_at, finished_at"
    };
}

/// Job counts of a campaign by state, and items (blocks or networks) by outcome.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Progress {
    pub jobs: i64,
    pub queued: i64,
    pub leased: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub items: i64,
    pub items_done: i64,
}

pub struct NewCampaign<'a> {
    pub space: &'a str,
    pub device_selector: &'a serde_json::Value,
    pub frameworks: &'a [String],
    pub protocol: &'a serde_json::Value,
    pub validation: Option<&'a serde_json::Value>,
    pub options: &'a serde_json::Value,
    pub created_by: Option<Uuid>,
}

pub struct NewJob {
    pub device_id: Uuid,
    pub framework: String,
    /// `blocks` or `networks`.
    pub kind: &'static str,
    /// `{"items": [...], "protocol": {...}, "space": "..."}`
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub device_id: Uuid,
    pub framework: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_id: Option<Uuid>,
    pub leased_by: Option<Uuid>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

macro_rules! job_columns {
    () => {
        "id, campaign_id, device_id, framework, kind, payload, state, attempt, max_attempts, lease_id, leased_by, lease_expires_at, last_error"
    };
}

/// The claiming agent was revoked.
#[derive(Debug)]
pub struct AgentRevoked;

/// The outcome of checking an upload or renewal against the job's lease.
#[derive(Debug)]
pub enum LeaseCheck {
    NoSuchJob,
    /// The campaign or job was cancelled: drop it.
    Gone,
    /// Another attempt holds (or held) the job: the caller's lease is stale.
    Stale,
    /// This exact (job, attempt, lease) was already uploaded.
    AlreadyDone,
    Held(Box<JobRow>),
}

/// One verified, timed series to store.
pub struct NewMeasurement {
    pub kind: &'static str,
    pub key: String,
    pub framework_version: String,
    pub samples_ms: Vec<f64>,
    pub warmup_runs: i32,
    pub timer: String,
    pub max_error: Option<f64>,
    pub pipeline_ms: Option<f64>,
    pub environment: serde_json::Value,
}

impl Db {
    /// Creates a campaign and all its jobs at once.
    pub async fn create_campaign(
        &self,
        c: NewCampaign<'_>,
        jobs: &[NewJob],
    ) -> Result<CampaignRow, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: CampaignRow = sqlx::query_as(concat!(
            "INSERT INTO campaigns (space, device_selector, frameworks, protocol, validation, options, created_by, state, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN 'done' ELSE 'queued' END, CASE WHEN $8 THEN now() END)
             RETURNING ",
            campaign_columns!()
        ))
        .bind(c.space)
        .bind(c.device_selector)
        .bind(c.frameworks)
        .bind(c.protocol)
        .bind(c.validation)
        .bind(c.options)
        .bind(c.created_by)
        .bind(jobs.is_empty())
        .fetch_one(&mut *tx)
        .await?;
        if !jobs.is_empty() {
            let devices: Vec<Uuid> = jobs.iter().map(|j| j.device_id).collect();
            let frameworks: Vec<String> = jobs.iter().map(|j| j.framework.clone()).collect();
            let kinds: Vec<String> = jobs.iter().map(|j| j.kind.to_string()).collect();
            let payloads: Vec<serde_json::Value> = jobs.iter().map(|j| j.payload.clone()).collect();
            sqlx::query(
                "INSERT INTO jobs (campaign_id, device_id, framework, kind, payload)
                 SELECT $1, d, f, k, p FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS t(d, f, k, p, n)
                 ORDER BY n",
            )
            .bind(row.id)
            .bind(&devices)
            .bind(&frameworks)
            .bind(&kinds)
            .bind(&payloads)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    pub async fn campaign(&self, id: Uuid) -> Result<Option<CampaignRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            campaign_columns!(),
            " FROM campaigns WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn campaigns(&self, limit: i64) -> Result<Vec<CampaignRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            campaign_columns!(),
            " FROM campaigns ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn campaign_progress(&self, id: Uuid) -> Result<Progress, sqlx::Error> {
        sqlx::query_as(
            "SELECT count(*) AS jobs,
                    count(*) FILTER (WHERE state = 'queued') AS queued,
                    count(*) FILTER (WHERE state = 'leased') AS leased,
                    count(*) FILTER (WHERE state = 'done') AS done,
                    count(*) FILTER (WHERE state = 'failed') AS failed,
                    count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                    COALESCE(sum(jsonb_array_length(payload->'items')), 0)::bigint AS items,
                    COALESCE(sum(jsonb_array_length(payload->'items')) FILTER (WHERE state = 'done'), 0)::bigint AS items_done
             FROM jobs WHERE campaign_id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
    }

    /// Cancels a campaign and its unfinished jobs. None when there is no such campaign.
    pub async fn cancel_campaign(&self, id: Uuid) -> Result<Option<CampaignRow>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<CampaignRow> = sqlx::query_as(concat!(
            "UPDATE campaigns SET
                 state = CASE WHEN state IN ('queued', 'running') THEN 'cancelled' ELSE state END,
                 finished_at = CASE WHEN state IN ('queued', 'running') THEN now() ELSE finished_at END
             WHERE id = $1 RETURNING ",
            campaign_columns!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, finished_at = now()
                 WHERE campaign_id = $1 AND state IN ('queued', 'leased')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Block keys of `keys` whose entry on (device, framework) is fresh (measured, not stale).
    pub async fn fresh_keys(
        &self,
        device: Uuid,
        framework: &str,
        keys: &[String],
    ) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT block_key FROM table_entries
             WHERE device_id = $1 AND framework = $2 AND NOT stale AND block_key = ANY($3)",
        )
        .bind(device)
        .bind(framework)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Fails jobs whose last allowed attempt's lease ran out, and settles their campaigns.
    async fn expire_exhausted(&self) -> Result<(), sqlx::Error> {
        let campaigns: Vec<(Uuid,)> = sqlx::query_as(
            "UPDATE jobs SET state = 'failed', lease_expires_at = NULL, finished_at = now(),
                 last_error = COALESCE(last_error || '; ', '') || 'the lease of the last attempt ran out'
             WHERE state = 'leased' AND lease_expires_at < now() AND attempt >= max_attempts
             RETURNING campaign_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (c,) in campaigns {
            let mut tx = self.pool.begin().await?;
            settle_campaign(&mut tx, c).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Hands the device's next job to the agent with a fresh lease: a queued job, or one whose
    /// lease ran out (then with the next attempt, which fences the old holder out). Refuses an
    /// agent revoked since its request was authenticated (a long poll outlives that check).
    pub async fn claim_job(
        &self,
        device: Uuid,
        agent: Uuid,
        lease_s: f64,
    ) -> Result<Result<Option<JobRow>, AgentRevoked>, sqlx::Error> {
        self.expire_exhausted().await?;
        let mut tx = self.pool.begin().await?;
        // FOR SHARE waits for a revocation in progress and then sees it; a revocation that
        // comes later waits for this claim, so a job is never leased to a revoked agent.
        let live: Option<(i32,)> =
            sqlx::query_as("SELECT 1 FROM agents WHERE id = $1 AND revoked_at IS NULL FOR SHARE")
                .bind(agent)
                .fetch_optional(&mut *tx)
                .await?;
        if live.is_none() {
            return Ok(Err(AgentRevoked));
        }
        let job: Option<JobRow> = sqlx::query_as(concat!(
            "UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_id = gen_random_uuid(),
                    leased_by = $2, lease_expires_at = now() + make_interval(secs => $3)
             WHERE id = (
                 SELECT j.id FROM jobs j JOIN campaigns c ON c.id = j.campaign_id
                 WHERE j.device_id = $1 AND c.state IN ('queued', 'running')
                   AND (j.state = 'queued' OR (j.state = 'leased' AND j.lease_expires_at < now()))
                 ORDER BY j.seq
                 FOR UPDATE OF j SKIP LOCKED
                 LIMIT 1)
             RETURNING ",
            job_columns!()
        ))
        .bind(device)
        .bind(agent)
        .bind(lease_s)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(j) = &job {
            sqlx::query(
                "UPDATE campaigns SET state = 'running' WHERE id = $1 AND state = 'queued'",
            )
            .bind(j.campaign_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(job))
    }

    /// Whether the agent is still live and its device has a job to hand out now: one read-only
    /// statement, so a long poll can wait without a write transaction per round. The claim
    /// itself decides (another agent may take the job first).
    pub async fn claim_outlook(
        &self,
        device: Uuid,
        agent: Uuid,
    ) -> Result<(bool, bool), sqlx::Error> {
        let (live, ready): (Option<bool>, bool) = sqlx::query_as(
            "SELECT (SELECT revoked_at IS NULL FROM agents WHERE id = $2),
                    EXISTS (SELECT 1 FROM jobs j JOIN campaigns c ON c.id = j.campaign_id
                            WHERE j.device_id = $1 AND c.state IN ('queued', 'running')
                              AND (j.state = 'queued'
                                   OR (j.state = 'leased' AND j.lease_expires_at < now())))",
        )
        .bind(device)
        .bind(agent)
        .fetch_one(&self.pool)
        .await?;
        Ok((live.unwrap_or(false), ready))
    }

    async fn check_lease(
        tx: &mut sqlx::PgConnection,
        job: Uuid,
        agent: Uuid,
        attempt: i32,
        lease: Uuid,
    ) -> Result<LeaseCheck, sqlx::Error> {
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1 FOR UPDATE"
        ))
        .bind(job)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(LeaseCheck::NoSuchJob);
        };
        let ours =
            row.attempt == attempt && row.lease_id == Some(lease) && row.leased_by == Some(agent);
        Ok(match row.state.as_str() {
            "cancelled" => LeaseCheck::Gone,
            "done" if ours => LeaseCheck::AlreadyDone,
            "leased" if ours => LeaseCheck::Held(Box::new(row)),
            _ => LeaseCheck::Stale,
        })
    }

    /// Extends the agent's lease on the job.
    pub async fn renew_lease(
        &self,
        job: Uuid,
        agent: Uuid,
        attempt: i32,
        lease: Uuid,
        lease_s: f64,
    ) -> Result<(LeaseCheck, Option<DateTime<Utc>>), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let check = Self::check_lease(&mut tx, job, agent, attempt, lease).await?;
        let mut until = None;
        if matches!(check, LeaseCheck::Held(_)) {
            let (t,): (DateTime<Utc>,) = sqlx::query_as(
                "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $2) WHERE id = $1 RETURNING lease_expires_at",
            )
            .bind(job)
            .bind(lease_s)
            .fetch_one(&mut *tx)
            .await?;
            until = Some(t);
        }
        tx.commit().await?;
        Ok((check, until))
    }

    /// Gives the job back to the queue (the agent is stopping): the next claim gets the next
    /// attempt.
    pub async fn release_job(
        &self,
        job: Uuid,
        agent: Uuid,
        attempt: i32,
        lease: Uuid,
        reason: Option<&str>,
    ) -> Result<LeaseCheck, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let check = Self::check_lease(&mut tx, job, agent, attempt, lease).await?;
        if matches!(check, LeaseCheck::Held(_)) {
            sqlx::query(
                "UPDATE jobs SET state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END,
                     lease_id = NULL, leased_by = NULL, lease_expires_at = NULL,
                     finished_at = CASE WHEN attempt >= max_attempts THEN now() END,
                     last_error = COALESCE($2, last_error)
                 WHERE id = $1",
            )
            .bind(job)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(check)
    }

    /// Stores a job's results in one transaction: the verified series as measurements, the
    /// recomputed table entries of their blocks, the job done (with failed items noted), and the
    /// campaign settled. `validate` sees the held job and either accepts the upload or refuses it
    /// before anything is written.
    #[allow(clippy::too_many_arguments)]
    pub async fn ingest_results<E>(
        &self,
        job: Uuid,
        agent: Uuid,
        attempt: i32,
        lease: Uuid,
        agent_version: &str,
        validate: impl FnOnce(&JobRow) -> Result<(Vec<NewMeasurement>, Vec<String>), E>,
    ) -> Result<Result<(LeaseCheck, usize, usize), E>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let check = Self::check_lease(&mut tx, job, agent, attempt, lease).await?;
        let LeaseCheck::Held(row) = check else {
            return Ok(Ok((check, 0, 0)));
        };
        let (measurements, failed) = match validate(&row) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let space = row.payload["space"].as_str().map(str::to_string);
        let mut touched: BTreeMap<(String, String), ()> = BTreeMap::new();
        for m in &measurements {
            sqlx::query(
                "INSERT INTO measurements (device_id, framework, framework_version, kind, key, space, job_id, attempt,
                     agent_id, source, samples_ms, warmup_runs, timer, verified, max_abs_error, pipeline_ms,
                     agent_version, kernel_version, environment, measured_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'agent', $10, $11, $12, true, $13, $14, $15, $3, $16, now())",
            )
            .bind(row.device_id)
            .bind(&row.framework)
            .bind(&m.framework_version)
            .bind(m.kind)
            .bind(&m.key)
            .bind(&space)
            .bind(row.id)
            .bind(attempt)
            .bind(agent)
            .bind(&m.samples_ms)
            .bind(m.warmup_runs)
            .bind(&m.timer)
            .bind(m.max_error)
            .bind(m.pipeline_ms)
            .bind(agent_version)
            .bind(&m.environment)
            .execute(&mut *tx)
            .await?;
            if m.kind == "block" {
                touched.insert((m.key.clone(), m.framework_version.clone()), ());
            }
        }
        for (key, version) in touched.keys() {
            recompute_entry(&mut tx, row.device_id, &row.framework, key, version).await?;
        }
        if !touched.is_empty() {
            super::tables::notify_table_change(&mut tx, row.device_id).await?;
        }
        if let Some(((_, version), _)) = touched.iter().next_back() {
            // Entries measured with another kernel version no longer describe these kernels.
            sqlx::query(
                "UPDATE table_entries SET stale = true
                 WHERE device_id = $1 AND framework = $2 AND framework_version <> $3 AND NOT stale",
            )
            .bind(row.device_id)
            .bind(&row.framework)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        let error = (!failed.is_empty()).then(|| format!("failed: {}", failed.join(", ")));
        sqlx::query(
            "UPDATE jobs SET state = 'done', lease_expires_at = NULL, finished_at = now(), last_error = $2 WHERE id = $1",
        )
        .bind(row.id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        settle_campaign(&mut tx, row.campaign_id).await?;
        tx.commit().await?;
        Ok(Ok((
            LeaseCheck::Held(row),
            measurements.len(),
            failed.len(),
        )))
    }

    /// Verified measurements stored for a (job, attempt), for duplicate uploads' answers.
    pub async fn stored_for_attempt(&self, job: Uuid, attempt: i32) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM measurements WHERE job_id = $1 AND attempt = $2")
                .bind(job)
                .bind(attempt)
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }
}

/// Recomputes one entry from every sample of the block on (device, framework) at this kernel
/// version, so an entry always equals the statistics of the raw samples behind it.
pub(super) async fn recompute_entry(
    tx: &mut sqlx::PgConnection,
    device: Uuid,
    framework: &str,
    key: &str,
    version: &str,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(Vec<f64>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT samples_ms, measured_at FROM measurements
         WHERE device_id = $1 AND framework = $2 AND kind = 'block' AND key = $3 AND framework_version = $4 AND verified",
    )
    .bind(device)
    .bind(framework)
    .bind(key)
    .bind(version)
    .fetch_all(&mut *tx)
    .await?;
    let samples: Vec<f64> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
    let Ok(s) = Summary::from_samples(&samples) else {
        return Ok(());
    };
    let first = rows.iter().map(|r| r.1).min();
    let last = rows.iter().map(|r| r.1).max();
    sqlx::query(
        "INSERT INTO table_entries (device_id, framework, block_key, framework_version, count, min_ms, p10_ms,
             median_ms, p90_ms, mean_ms, iqr_ms, mad_ms, ci_low_ms, ci_high_ms, stale, first_measured_at, last_measured_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, false, $15, $16)
         ON CONFLICT (device_id, framework, block_key) DO UPDATE SET
             framework_version = EXCLUDED.framework_version, count = EXCLUDED.count, min_ms = EXCLUDED.min_ms,
             p10_ms = EXCLUDED.p10_ms, median_ms = EXCLUDED.median_ms, p90_ms = EXCLUDED.p90_ms,
             mean_ms = EXCLUDED.mean_ms, iqr_ms = EXCLUDED.iqr_ms, mad_ms = EXCLUDED.mad_ms,
             ci_low_ms = EXCLUDED.ci_low_ms, ci_high_ms = EXCLUDED.ci_high_ms, stale = false,
             first_measured_at = EXCLUDED.first_measured_at, last_measured_at = EXCLUDED.last_measured_at",
    )
    .bind(device)
    .bind(framework)
    .bind(key)
    .bind(version)
    .bind(s.count as i32)
    .bind(s.min)
    .bind(s.p10)
    .bind(s.median)
    .bind(s.p90)
    .bind(s.mean)
    .bind(s.iqr)
    .bind(s.mad)
    .bind(s.median_ci.map(|c| c.low))
    .bind(s.median_ci.map(|c| c.high))
    .bind(first)
    .bind(last)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a campaign to `done` (or `failed`, when every job failed) once no job is pending.
async fn settle_campaign(tx: &mut sqlx::PgConnection, campaign: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE campaigns c SET
             state = CASE WHEN p.done = 0 AND p.failed > 0 THEN 'failed' ELSE 'done' END,
             failure_reason = CASE WHEN p.failed > 0 THEN p.failed || ' of ' || p.total || ' jobs failed' END,
             finished_at = now()
         FROM (SELECT count(*) AS total,
                      count(*) FILTER (WHERE state = 'done') AS done,
                      count(*) FILTER (WHERE state = 'failed') AS failed,
                      count(*) FILTER (WHERE state IN ('queued', 'leased')) AS pending
               FROM jobs WHERE campaign_id = $1) p
         WHERE c.id = $1 AND c.state IN ('queued', 'running') AND p.pending = 0",
    )
    .bind(campaign)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
