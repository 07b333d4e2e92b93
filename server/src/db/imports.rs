//! Measurements produced by other tools (TFLite benchmark_model, SNPE, MACE, ncnn), imported
//! under their own framework name, and devices registered by hand for them.

use uuid::Uuid;

use super::Db;
use super::jobs::recompute_entry;

/// One imported series.
pub struct ImportedSeries {
    pub key: String,
    pub samples_ms: Vec<f64>,
}

/// Why an import was refused before anything was written.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportRefusal {
    /// The framework is one of the agent's own: its numbers come only from agents.
    NativeFramework,
}

impl Db {
    /// Registers a device that no agent runs on (its numbers will be imported).
    pub async fn create_manual_device(
        &self,
        name: &str,
        labels: &[String],
        fingerprint: &serde_json::Value,
    ) -> Result<Uuid, sqlx::Error> {
        let (id,): (Uuid,) = sqlx::query_as(
            "INSERT INTO devices (name, identity, fingerprint, labels) VALUES ($1, 'manual:' || gen_random_uuid(), $2, $3)
             RETURNING id",
        )
        .bind(name)
        .bind(fingerprint)
        .bind(labels)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Stores imported series and recomputes their entries, all in one transaction; registers
    /// the framework as `imported` on first use.
    pub async fn import_series(
        &self,
        device: Uuid,
        framework: &str,
        version: &str,
        space: &str,
        tool: &serde_json::Value,
        series: &[ImportedSeries],
    ) -> Result<Result<usize, ImportRefusal>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let kind: Option<(String,)> = sqlx::query_as("SELECT kind FROM frameworks WHERE id = $1")
            .bind(framework)
            .fetch_optional(&mut *tx)
            .await?;
        match kind {
            Some((k,)) if k == "native" => return Ok(Err(ImportRefusal::NativeFramework)),
            Some(_) => {}
            None => {
                sqlx::query("INSERT INTO frameworks (id, kind, description) VALUES ($1, 'imported', 'imported measurements')")
                    .bind(framework)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for s in series {
            sqlx::query(
                "INSERT INTO measurements (device_id, framework, framework_version, kind, key, space, source,
                     samples_ms, warmup_runs, timer, verified, environment, measured_at)
                 VALUES ($1, $2, $3, 'block', $4, $5, 'import', $6, 0, 'external', true, $7, now())",
            )
            .bind(device)
            .bind(framework)
            .bind(version)
            .bind(&s.key)
            .bind(space)
            .bind(&s.samples_ms)
            .bind(tool)
            .execute(&mut *tx)
            .await?;
        }
        for s in series {
            recompute_entry(&mut tx, device, framework, &s.key, version).await?;
        }
        sqlx::query(
            "UPDATE table_entries SET stale = true
             WHERE device_id = $1 AND framework = $2 AND framework_version <> $3 AND NOT stale",
        )
        .bind(device)
        .bind(framework)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        super::tables::notify_table_change(&mut tx, device).await?;
        tx.commit().await?;
        Ok(Ok(series.len()))
    }
}
