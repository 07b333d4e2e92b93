//! Searches: a queue of NSGA-II runs that workers claim with SKIP LOCKED, fence by worker id,
//! checkpoint every generation, and hand over when a worker's heartbeat goes stale.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SearchRow {
    pub id: Uuid,
    pub space: String,
    pub request: serde_json::Value,
    pub state: String,
    pub generation: i32,
    pub evaluations: i64,
    pub cancel_requested: bool,
    pub worker_id: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

macro_rules! search_columns {
    () => {
        "id, space, request, state, generation, evaluations, cancel_requested, worker_id, \
         heartbeat_at, failure_reason, created_at, started_at, finished_at"
    };
}

/// The stored front and progress history of a search.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FrontRow {
    pub generation: i32,
    pub front: serde_json::Value,
    pub history: serde_json::Value,
}

/// What a worker writes at the end of a generation, in one transaction.
pub struct GenerationRecord<'a> {
    pub generation: i32,
    pub evaluations: i64,
    pub checkpoint: &'a serde_json::Value,
    pub front: &'a serde_json::Value,
    pub history: &'a serde_json::Value,
}

/// Why a worker may no longer write a search.
#[derive(Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Still ours; carry on.
    Held,
    /// Ours, but a user asked to cancel: stop now.
    CancelRequested,
    /// Another worker took it over (our heartbeat went stale) or it ended: stop, write nothing.
    Lost,
}

impl Db {
    pub async fn create_search(
        &self,
        space: &str,
        request: &serde_json::Value,
        created_by: Option<Uuid>,
    ) -> Result<SearchRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "INSERT INTO searches (space, request, created_by) VALUES ($1, $2, $3) RETURNING ",
            search_columns!()
        ))
        .bind(space)
        .bind(request)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn search(&self, id: Uuid) -> Result<Option<SearchRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            search_columns!(),
            " FROM searches WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Newest first, optionally of one state, at most `limit`.
    pub async fn searches(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SearchRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            search_columns!(),
            " FROM searches WHERE ($1::text IS NULL OR state = $1)
              ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Claims the oldest queued search, or a running one whose worker stopped heartbeating for
    /// `stale_after_s`: that one is resumed from its checkpoint.
    pub async fn claim_search(
        &self,
        worker_id: &str,
        stale_after_s: f64,
    ) -> Result<Option<SearchRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE searches SET state = 'running', worker_id = $1, heartbeat_at = now(),
                    started_at = COALESCE(started_at, now())
             WHERE id = (
                 SELECT id FROM searches
                 WHERE state = 'queued'
                    OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => $2))
                 ORDER BY created_at, id
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1)
             RETURNING ",
            search_columns!()
        ))
        .bind(worker_id)
        .bind(stale_after_s)
        .fetch_optional(&self.pool)
        .await
    }

    /// Renews the worker's hold; tells it whether to go on.
    pub async fn heartbeat_search(
        &self,
        id: Uuid,
        worker_id: &str,
    ) -> Result<Ownership, sqlx::Error> {
        let row: Option<(bool,)> = sqlx::query_as(
            "UPDATE searches SET heartbeat_at = now()
             WHERE id = $1 AND worker_id = $2 AND state = 'running'
             RETURNING cancel_requested",
        )
        .bind(id)
        .bind(worker_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => Ownership::Lost,
            Some((true,)) => Ownership::CancelRequested,
            Some((false,)) => Ownership::Held,
        })
    }

    /// The last checkpoint, to resume from.
    pub async fn search_checkpoint(
        &self,
        id: Uuid,
    ) -> Result<Option<(i32, serde_json::Value)>, sqlx::Error> {
        sqlx::query_as("SELECT generation, state FROM search_checkpoints WHERE search_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Writes a generation's checkpoint, front and progress, fenced by the worker id: a worker
    /// that lost the search writes nothing.
    pub async fn record_generation(
        &self,
        id: Uuid,
        worker_id: &str,
        g: GenerationRecord<'_>,
    ) -> Result<Ownership, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(bool,)> = sqlx::query_as(
            "UPDATE searches SET generation = $3, evaluations = $4, heartbeat_at = now()
             WHERE id = $1 AND worker_id = $2 AND state = 'running'
             RETURNING cancel_requested",
        )
        .bind(id)
        .bind(worker_id)
        .bind(g.generation)
        .bind(g.evaluations)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((cancel,)) = row else {
            return Ok(Ownership::Lost);
        };
        sqlx::query(
            "INSERT INTO search_checkpoints (search_id, generation, state) VALUES ($1, $2, $3)
             ON CONFLICT (search_id) DO UPDATE SET generation = EXCLUDED.generation, state = EXCLUDED.state",
        )
        .bind(id)
        .bind(g.generation)
        .bind(g.checkpoint)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO search_fronts (search_id, generation, front, history) VALUES ($1, $2, $3, $4)
             ON CONFLICT (search_id) DO UPDATE
             SET generation = EXCLUDED.generation, front = EXCLUDED.front, history = EXCLUDED.history",
        )
        .bind(id)
        .bind(g.generation)
        .bind(g.front)
        .bind(g.history)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if cancel {
            Ownership::CancelRequested
        } else {
            Ownership::Held
        })
    }

    /// Ends a search held by `worker_id` in `state` (`done`, `failed` or `cancelled`).
    pub async fn finish_search(
        &self,
        id: Uuid,
        worker_id: &str,
        state: &str,
        failure_reason: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE searches SET state = $3, failure_reason = $4, finished_at = now()
             WHERE id = $1 AND worker_id = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker_id)
        .bind(state)
        .bind(failure_reason)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Cancels a queued search at once, or asks the worker of a running one to stop within a
    /// generation. Ended searches stay as they are. None when there is no such search.
    pub async fn cancel_search(&self, id: Uuid) -> Result<Option<SearchRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE searches SET
                 state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
                 finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
                 cancel_requested = cancel_requested OR state IN ('queued', 'running')
             WHERE id = $1 RETURNING ",
            search_columns!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn search_front(&self, id: Uuid) -> Result<Option<FrontRow>, sqlx::Error> {
        sqlx::query_as("SELECT generation, front, history FROM search_fronts WHERE search_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }
}
