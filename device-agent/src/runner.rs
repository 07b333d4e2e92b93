//! `gpulut-agent run`: the worker loop. Heartbeat, long-poll for a job, verify and time its
//! items on the GPU while renewing the lease, spool the results to disk, upload them; retry
//! with backoff and jitter whenever the server is unreachable. A result is deleted from the
//! spool only once the server has answered for it, so nothing measured is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gpulut_tables::protocol::{Cadence, HeartbeatRequest, Job, JobKind, ResultUpload};
use gpulut_tables::wire::{BlockMeasurement, MeasuredKind};
use tokio::sync::watch;

use crate::adapter::Registry;
use crate::bench::{self, Options, Silent};
use crate::client::{Client, ClientError};
use crate::gpu::Gpu;
use crate::info::AGENT_VERSION;
use crate::reference::TOLERANCE;
use crate::state::{Credentials, StateDir, StateError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}; enroll again: gpulut-agent enroll --server URL --token TOKEN")]
    Unauthorized(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the server refused a request this agent cannot fix by retrying: {0}")]
    Rejected(String),
}

/// Settings of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop (successfully) once a claim finds no job: for scripts that run one campaign.
    pub until_idle: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub jobs: usize,
    pub uploads: usize,
}

/// Jitter of ±20% on every interval, so a fleet of agents does not beat in step.
fn jittered(seconds: f64) -> Duration {
    Duration::from_secs_f64((seconds * rand::random_range(0.8..1.2)).max(0.05))
}

/// Retries `f` while the server is unreachable: exponential backoff from 0.5 s to 30 s with
/// jitter, until it answers or `shutdown` turns true (then the last error is returned).
async fn persist<T, F, Fut>(
    what: &str,
    shutdown: &watch::Receiver<bool>,
    mut f: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut delay = 0.5f64;
    loop {
        match f().await {
            Err(e) if e.is_transient() => {
                if *shutdown.borrow() {
                    return Err(e);
                }
                tracing::warn!(error = %e, retry_in_s = delay, "{what} failed; retrying");
                let mut s = shutdown.clone();
                tokio::select! {
                    () = tokio::time::sleep(jittered(delay)) => {},
                    _ = s.changed() => {},
                }
                delay = (delay * 2.0).min(30.0);
            }
            other => return other,
        }
    }
}

/// A failed, untimed result for an item the agent could not even set up.
fn failed(job: &Job, key: &str, error: String) -> BlockMeasurement {
    BlockMeasurement {
        key: key.to_string(),
        kind: match job.kind {
            JobKind::Blocks => MeasuredKind::Block,
            JobKind::Networks => MeasuredKind::Arch,
        },
        name: None,
        framework: job.framework.clone(),
        framework_version: Registry::global()
            .get(&job.framework)
            .map_or("unknown", |f| f.version())
            .to_string(),
        verified: false,
        max_relative_error: None,
        tolerance: TOLERANCE,
        error: Some(error),
        median_ms: None,
        samples: Vec::new(),
        timer: None,
        wall_samples: Vec::new(),
        warmup_runs: 0,
        stopped_by: None,
        pipeline_ms: 0.0,
        dispatches: 0,
        flops: 0,
        bytes: 0,
        state_start: None,
        state_end: None,
    }
}

/// Verifies and times a job's items (blocking: GPU work). Items the agent cannot set up are
/// reported as failed, so the upload still accounts for every item.
pub fn execute(gpu: &Gpu, job: &Job) -> (Vec<BlockMeasurement>, Option<bool>) {
    let framework = match Registry::global().usable(&job.framework) {
        Ok(f) => f,
        Err(error) => {
            return (
                job.items
                    .iter()
                    .map(|k| failed(job, k, error.clone()))
                    .collect(),
                None,
            );
        }
    };
    let space = match bench::space(&job.space) {
        Ok(s) => s,
        Err(e) => {
            return (
                job.items
                    .iter()
                    .map(|k| failed(job, k, e.to_string()))
                    .collect(),
                None,
            );
        }
    };
    let mut items = Vec::new();
    let mut results = Vec::new();
    for text in &job.items {
        let item = match job.kind {
            JobKind::Blocks => bench::block_item(&space, text),
            JobKind::Networks => bench::arch_item(&space, text),
        };
        match item {
            Ok(mut item) => {
                // Report under the job's own spelling (e.g. `MoGA-A`, not its hex form).
                item.key = text.clone();
                items.push(item);
            }
            Err(e) => results.push(failed(job, text, e.to_string())),
        }
    }
    let options = Options {
        protocol: job.protocol.clone(),
        fault: None,
    };
    let outcome = bench::run_adapters(gpu, &items, &[framework], &options, &mut Silent);
    results.extend(outcome.results);
    (results, outcome.timestamps_valid)
}

/// Uploads one spooled result; true when it is settled (stored, duplicate, or void).
async fn deliver(
    client: &Client,
    state: &StateDir,
    path: &std::path::Path,
    job_id: &str,
    upload: &ResultUpload,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool, RunError> {
    match persist("upload", shutdown, || client.upload(job_id, upload)).await {
        Ok(ack) => {
            tracing::info!(
                job = job_id,
                stored = ack.stored,
                failed = ack.failed,
                duplicate = ack.duplicate,
                "results uploaded"
            );
            state.unspool(path)?;
            Ok(true)
        }
        Err(ClientError::Unauthorized(m)) => Err(RunError::Unauthorized(m)),
        Err(e @ (ClientError::Gone(_) | ClientError::Stale(_))) => {
            tracing::warn!(job = job_id, error = %e, "results dropped: the job is no longer this agent's");
            state.unspool(path)?;
            Ok(true)
        }
        Err(e @ ClientError::Rejected { .. }) => {
            // Keep the file for a person to look at, but out of the way of the queue.
            tracing::error!(job = job_id, error = %e, "results refused by the server; kept as .rejected");
            let _ = std::fs::rename(path, path.with_extension("rejected"));
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(job = job_id, error = %e, "upload postponed");
            Ok(false)
        }
    }
}

async fn flush_spool(
    client: &Client,
    state: &StateDir,
    shutdown: &watch::Receiver<bool>,
) -> Result<usize, RunError> {
    let mut n = 0;
    for (path, s) in state.spooled()? {
        if deliver(client, state, &path, &s.job_id, &s.upload, shutdown).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Runs until `shutdown` turns true (or, with `until_idle`, until no job is left).
pub async fn run(
    state: StateDir,
    creds: Credentials,
    gpu: Arc<Gpu>,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let client = Client::new(&creds.server, Some(creds.token.clone()))
        .map_err(|e| RunError::Rejected(e.to_string()))?;
    let cadence = creds.cadence;
    let mut summary = RunSummary::default();
    tracing::info!(server = %creds.server, device = %creds.device_name, "agent running");

    // Heartbeats on their own task, so they continue while the GPU works.
    let unauthorized = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (client, unauthorized, mut stop) =
            (client.clone(), unauthorized.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let req = HeartbeatRequest {
                    agent_version: Some(AGENT_VERSION.to_string()),
                    state: None,
                    frameworks: crate::framework::supported(),
                };
                match client.heartbeat(&req).await {
                    Ok(_) => {}
                    Err(ClientError::Unauthorized(m)) => {
                        tracing::error!(error = %m, "heartbeat refused");
                        unauthorized.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(jittered(cadence.heartbeat_s)) => {},
                    _ = stop.changed() => return,
                }
            }
        })
    };
    let result = work(
        &client,
        &state,
        &gpu,
        cadence,
        &options,
        &shutdown,
        &unauthorized,
        &mut summary,
    )
    .await;
    heartbeat.abort();
    result.map(|()| summary)
}

#[allow(clippy::too_many_arguments)]
async fn work(
    client: &Client,
    state: &StateDir,
    gpu: &Arc<Gpu>,
    cadence: Cadence,
    options: &RunOptions,
    shutdown: &watch::Receiver<bool>,
    unauthorized: &AtomicBool,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    let mut refused = std::collections::HashSet::new();
    loop {
        summary.uploads += flush_spool(client, state, shutdown).await?;
        if *shutdown.borrow() {
            return Ok(());
        }
        if unauthorized.load(Ordering::SeqCst) {
            return Err(RunError::Unauthorized(
                "the server refused this agent's heartbeat".into(),
            ));
        }
        let mut stop = shutdown.clone();
        // The server caps the wait at its cadence; ask for all of it.
        let claimed = tokio::select! {
            r = persist("claim", shutdown, || client.claim(cadence.poll_wait_s)) => r,
            _ = stop.changed() => return Ok(()),
        };
        let job = match claimed {
            Ok(Some(job)) => job,
            Ok(None) if options.until_idle => return Ok(()),
            Ok(None) => continue,
            Err(ClientError::Unauthorized(m)) => return Err(RunError::Unauthorized(m)),
            Err(e) if e.is_transient() => return Ok(()), // only when shutting down
            Err(e) => return Err(RunError::Rejected(e.to_string())),
        };
        tracing::info!(job = %job.id, attempt = job.attempt, items = job.items.len(), framework = %job.framework, "job claimed");
        if let Err(reason) = Registry::global().usable(&job.framework) {
            // Not this agent's to measure: give it back with the reason, never upload a
            // silent failure. The server should not offer it again (see the heartbeat's list).
            tracing::error!(job = %job.id, "{reason}; job released");
            if let Err(e) = client.release(&job, &reason).await {
                tracing::warn!(job = %job.id, error = %e, "releasing the job failed; its lease will expire");
            }
            if !refused.insert(job.id.clone()) && options.until_idle {
                // The same job again: nothing else here for this agent.
                return Ok(());
            }
            let mut stop = shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(jittered(cadence.poll_wait_s.max(1.0))) => {},
                _ = stop.changed() => return Ok(()),
            }
            continue;
        }

        // Renew the lease while the GPU works; a lease the server took back voids the work.
        let void = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (client, job, void, renew_every) = (
                client.clone(),
                job.clone(),
                void.clone(),
                job.lease_s.min(cadence.lease_s) / 3.0,
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(jittered(renew_every)).await;
                    match client.renew(&job).await {
                        Ok(_) => {}
                        Err(
                            e @ (ClientError::Gone(_)
                            | ClientError::Stale(_)
                            | ClientError::Unauthorized(_)),
                        ) => {
                            tracing::warn!(job = %job.id, error = %e, "lease lost; the job's work will be dropped");
                            void.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "lease renewal failed; retrying")
                        }
                    }
                }
            })
        };
        let task = {
            let (gpu, job) = (gpu.clone(), job.clone());
            tokio::task::spawn_blocking(move || execute(&gpu, &job))
        };
        let mut stop = shutdown.clone();
        let outcome = tokio::select! {
            r = task => Some(r),
            _ = stop.changed() => None,
        };
        renewer.abort();
        let Some(outcome) = outcome else {
            // Stopping: give the job back now rather than let its lease run out.
            match client.release(&job, "the agent is shutting down").await {
                Ok(()) => tracing::info!(job = %job.id, "job released"),
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "releasing the job failed; its lease will expire")
                }
            }
            return Ok(());
        };
        let (results, timestamps_valid) = match outcome {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("the GPU work panicked: {e}");
                tracing::error!(job = %job.id, "{reason}");
                let _ = client.release(&job, &reason).await;
                continue;
            }
        };
        summary.jobs += 1;
        if void.load(Ordering::SeqCst) {
            continue;
        }
        let upload = ResultUpload {
            attempt: job.attempt,
            lease_id: job.lease_id.clone(),
            agent_version: AGENT_VERSION.to_string(),
            timestamps_valid,
            results,
        };
        let path = state.spool(&job.id, &upload)?;
        if deliver(client, state, &path, &job.id, &upload, shutdown).await? {
            summary.uploads += 1;
        }
    }
}
