//! The search worker: claims queued searches (or ones whose worker died), runs them generation
//! by generation with the engine, and checkpoints after each, so any worker can finish any
//! search bit-identically. Runs inside `gpulut-server serve` and as `gpulut-server worker`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use gpulut_search::{Checkpoint, Engine, ProblemSize};
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use super::{SearchPlan, SearchRequest};
use crate::db::{Db, GenerationRecord, Ownership, SearchRow};
use crate::error::ApiError;

/// Cadence of a worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often a running search's heartbeat is renewed.
    pub heartbeat: Duration,
    /// A running search whose heartbeat is older than this is taken over by another worker.
    pub stale_after: Duration,
    /// How long an idle worker waits before looking for work again.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// A worker's name in the `searches.worker_id` column: host, process and a random suffix, so
/// two workers in one process are told apart.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Runs until `shutdown` turns true: claim, run, repeat.
pub async fn run(db: Db, settings: WorkerSettings, mut shutdown: watch::Receiver<bool>) {
    let id = worker_id();
    tracing::info!(worker = %id, "search worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        match db
            .claim_search(&id, settings.stale_after.as_secs_f64())
            .await
        {
            Ok(Some(row)) => {
                let search = row.id;
                tracing::info!(worker = %id, %search, generation = row.generation, "search claimed");
                tokio::select! {
                    () = run_search(&db, &id, row, &settings) => {},
                    _ = shutdown.changed() => {
                        // The search keeps its checkpoint; another worker resumes it once the
                        // heartbeat goes stale.
                        tracing::info!(worker = %id, %search, "shutting down mid-search");
                        break;
                    }
                }
            }
            Ok(None) => {
                let jitter = rand::random_range(0.8..1.2);
                tokio::select! {
                    () = tokio::time::sleep(settings.idle_poll.mul_f64(jitter)) => {},
                    _ = shutdown.changed() => {},
                }
            }
            Err(e) => {
                tracing::warn!(worker = %id, error = %e, "claiming a search failed");
                tokio::select! {
                    () = tokio::time::sleep(settings.idle_poll * 5) => {},
                    _ = shutdown.changed() => {},
                }
            }
        }
    }
    tracing::info!(worker = %id, "search worker stopped");
}

/// Aborts the heartbeat task when the search's future ends or is dropped (a killed worker
/// must stop heartbeating, or its search would never be handed over).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const HELD: u8 = 0;
const CANCEL: u8 = 1;
const LOST: u8 = 2;

#[derive(Serialize)]
struct FrontMember {
    arch: String,
    choices: Vec<u8>,
    accuracy: f64,
    latency_ms: f64,
    params: u64,
    macs: u64,
}

#[derive(Serialize)]
struct ReferencePoint {
    name: String,
    arch: String,
    /// None for networks outside the grid, whose accuracy a grid evaluator cannot give.
    accuracy: Option<f64>,
    /// None when a table lacks one of its blocks.
    latency_ms: Option<f64>,
    params: u64,
    macs: u64,
}

async fn fail(db: &Db, id: Uuid, worker: &str, reason: &str) {
    tracing::warn!(search = %id, reason, "search failed");
    if let Err(e) = db.finish_search(id, worker, "failed", Some(reason)).await {
        tracing::error!(search = %id, error = %e, "recording a failed search");
    }
}

/// The reference networks on the same tables and evaluator.
async fn references(db: &Db, plan: &SearchPlan) -> Result<Vec<ReferencePoint>, String> {
    let refs = plan.space.references();
    let mut out = Vec::new();
    for name in refs.names() {
        let Some(arch) = refs.get(&plan.space, &name) else {
            continue;
        };
        let analysis = plan.space.analyze(&arch);
        let (accuracy, latency_ms) = match arch.choices() {
            Some(c) => {
                let acc = plan
                    .accuracy
                    .evaluate(&[c.to_vec()])
                    .await
                    .map_err(|e| e.to_string())?;
                (acc.first().copied(), Some(plan.latency(c)))
            }
            None => {
                // Outside the grid: predict from the tables block by block, when they cover it.
                let mut per_table = Vec::new();
                for t in &plan.tables {
                    let table = db
                        .latency_table(t.device, &t.framework)
                        .await
                        .map_err(|e| e.to_string())?;
                    per_table.push(table.predict(&analysis.blocks, Default::default()).total_ms);
                }
                let all: Option<Vec<f64>> = per_table.into_iter().collect();
                let latency = all.map(|v| match plan.combine {
                    super::Combine::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    super::Combine::Mean => v.iter().sum::<f64>() / v.len() as f64,
                });
                (None, latency)
            }
        };
        out.push(ReferencePoint {
            name,
            arch: analysis.arch,
            accuracy,
            latency_ms,
            params: analysis.params,
            macs: analysis.macs,
        });
    }
    Ok(out)
}

async fn run_search(db: &Db, worker: &str, row: SearchRow, settings: &WorkerSettings) {
    let id = row.id;
    let req: SearchRequest = match serde_json::from_value(row.request) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                db,
                id,
                worker,
                &format!("the stored request does not parse: {e}"),
            )
            .await;
        }
    };
    let plan = match SearchPlan::load(db, &req).await {
        Ok(p) => p,
        Err(ApiError::Client { detail, .. }) => return fail(db, id, worker, &detail).await,
        Err(e) => {
            // A database hiccup: leave the search to be picked up again once our hold is stale.
            tracing::warn!(search = %id, error = %e, "loading a search failed");
            return;
        }
    };
    let mut engine = match db.search_checkpoint(id).await {
        Ok(Some((_, state))) => match serde_json::from_value::<Checkpoint>(state)
            .map_err(|e| e.to_string())
            .and_then(|c| Engine::resume(c).map_err(|e| e.to_string()))
        {
            Ok(e) => {
                tracing::info!(search = %id, generation = e.generation(), "resuming from checkpoint");
                e
            }
            Err(e) => {
                return fail(
                    db,
                    id,
                    worker,
                    &format!("the checkpoint cannot be resumed: {e}"),
                )
                .await;
            }
        },
        Ok(None) => {
            let problem =
                match ProblemSize::uniform(plan.space.layers().len(), plan.space.choices().len()) {
                    Ok(p) => p,
                    Err(e) => return fail(db, id, worker, &e.to_string()).await,
                };
            match Engine::new(problem, plan.config.clone()) {
                Ok(e) => e,
                Err(e) => return fail(db, id, worker, &e.to_string()).await,
            }
        }
        Err(e) => {
            tracing::warn!(search = %id, error = %e, "reading the checkpoint failed");
            return;
        }
    };

    let status = Arc::new(AtomicU8::new(HELD));
    let _heartbeat = {
        let (db, worker, status, every) = (
            db.clone(),
            worker.to_string(),
            status.clone(),
            settings.heartbeat,
        );
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match db.heartbeat_search(id, &worker).await {
                    Ok(Ownership::Held) => {}
                    Ok(Ownership::CancelRequested) => status.store(CANCEL, Ordering::SeqCst),
                    Ok(Ownership::Lost) => {
                        status.store(LOST, Ordering::SeqCst);
                        break;
                    }
                    Err(e) => tracing::warn!(search = %id, error = %e, "heartbeat failed"),
                }
            }
        }))
    };

    let references = match references(db, &plan).await {
        Ok(r) => r,
        Err(reason) => return fail(db, id, worker, &reason).await,
    };

    while !engine.is_done() {
        match status.load(Ordering::SeqCst) {
            LOST => return,
            CANCEL => {
                let _ = db.finish_search(id, worker, "cancelled", None).await;
                return;
            }
            _ => {}
        }
        let batch = engine.ask();
        let objectives = match plan.evaluate(&batch).await {
            Ok(o) => o,
            Err(e) => return fail(db, id, worker, &e.to_string()).await,
        };
        if let Err(e) = engine.tell(objectives) {
            return fail(db, id, worker, &e.to_string()).await;
        }
        let mut front: Vec<FrontMember> = engine
            .front()
            .into_iter()
            .map(|m| FrontMember {
                arch: m.genome.iter().map(|c| format!("{c:x}")).collect(),
                choices: m.genome.clone(),
                accuracy: m.objectives.accuracy,
                latency_ms: m.objectives.latency,
                params: m.objectives.params as u64,
                macs: m.objectives.macs.unwrap_or_default() as u64,
            })
            .collect();
        front.sort_by(|a, b| {
            a.latency_ms
                .total_cmp(&b.latency_ms)
                .then_with(|| a.arch.cmp(&b.arch))
        });
        let evaluations: usize = engine.history().iter().map(|h| h.evaluated).sum();
        let front_doc = serde_json::json!({
            "accuracy_kind": plan.accuracy.kind(),
            "front": front,
            "references": references,
        });
        let checkpoint = match serde_json::to_value(engine.checkpoint()) {
            Ok(c) => c,
            Err(e) => {
                return fail(db, id, worker, &format!("serialising the checkpoint: {e}")).await;
            }
        };
        let history = serde_json::to_value(engine.history()).unwrap_or_default();
        let record = GenerationRecord {
            generation: engine.generation() as i32,
            evaluations: evaluations as i64,
            checkpoint: &checkpoint,
            front: &front_doc,
            history: &history,
        };
        match db.record_generation(id, worker, record).await {
            Ok(Ownership::Held) => {}
            Ok(Ownership::CancelRequested) => {
                let _ = db.finish_search(id, worker, "cancelled", None).await;
                return;
            }
            Ok(Ownership::Lost) => return,
            Err(e) => {
                tracing::warn!(search = %id, error = %e, "writing a generation failed; leaving it to be resumed");
                return;
            }
        }
    }
    match db.finish_search(id, worker, "done", None).await {
        Ok(true) => tracing::info!(search = %id, "search done"),
        Ok(false) => {}
        Err(e) => tracing::warn!(search = %id, error = %e, "recording a finished search"),
    }
}
