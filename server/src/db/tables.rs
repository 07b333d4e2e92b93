//! Latency tables as the search and predictions read them: the entries of one
//! (device, framework), restricted to the blocks of a space.

use gpulut_tables::{BlockKey, LatencyTable, SearchSpace, TableEntry};
use uuid::Uuid;

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    block_key: String,
    count: i32,
    min_ms: f64,
    p10_ms: f64,
    median_ms: f64,
    p90_ms: f64,
    mean_ms: f64,
    iqr_ms: f64,
    mad_ms: f64,
    ci_low_ms: Option<f64>,
    ci_high_ms: Option<f64>,
}

impl Db {
    /// A device by the id the list endpoints return (its UUID), or by its unique name.
    pub async fn find_device(&self, id_or_name: &str) -> Result<Option<DeviceRef>, sqlx::Error> {
        match Uuid::parse_str(id_or_name) {
            Ok(id) => {
                sqlx::query_as("SELECT id, name FROM devices WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
            }
            Err(_) => {
                let rows: Vec<DeviceRef> =
                    sqlx::query_as("SELECT id, name FROM devices WHERE name = $1 LIMIT 2")
                        .bind(id_or_name)
                        .fetch_all(&self.pool)
                        .await?;
                // A name shared by two devices identifies neither.
                Ok(if rows.len() == 1 {
                    rows.into_iter().next()
                } else {
                    None
                })
            }
        }
    }

    pub async fn framework_exists(&self, id: &str) -> Result<bool, sqlx::Error> {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM frameworks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The table of (device, framework).
    ///
    /// Block keys are global, so the table holds every entry of the (device, framework): a
    /// lookup by an architecture's blocks finds what it needs, whatever space it belongs to.
    /// (A primary-key range scan; no join, so the plan does not depend on table statistics.)
    pub async fn latency_table(
        &self,
        device: Uuid,
        framework: &str,
    ) -> Result<LatencyTable, sqlx::Error> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT block_key, count, min_ms, p10_ms, median_ms, p90_ms, mean_ms,
                    iqr_ms, mad_ms, ci_low_ms, ci_high_ms
             FROM table_entries WHERE device_id = $1 AND framework = $2",
        )
        .bind(device)
        .bind(framework)
        .fetch_all(&self.pool)
        .await?;
        let mut table = LatencyTable::default();
        for r in rows {
            table.insert(
                BlockKey::from_string(r.block_key),
                TableEntry {
                    median_ms: r.median_ms,
                    min_ms: r.min_ms,
                    p10_ms: r.p10_ms,
                    p90_ms: r.p90_ms,
                    mean_ms: r.mean_ms,
                    iqr_ms: r.iqr_ms,
                    mad_ms: r.mad_ms,
                    ci_low_ms: r.ci_low_ms,
                    ci_high_ms: r.ci_high_ms,
                    count: r.count.max(0) as usize,
                },
            );
        }
        Ok(table)
    }
}

/// One latency table: the entries of a (device, framework) over a space's blocks.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TableSummaryRow {
    pub device_id: Uuid,
    pub device_name: String,
    pub framework: String,
    pub space: String,
    pub entries: i64,
    pub stale: i64,
    pub blocks: i64,
    pub last_measured_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The calibrated accuracy of the table's validation, when it has one.
    pub validation: Option<serde_json::Value>,
}

/// One entry with where its block sits in the space.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryDetailRow {
    pub block_key: String,
    pub part: String,
    pub framework_version: String,
    pub count: i32,
    pub min_ms: f64,
    pub p10_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    pub iqr_ms: f64,
    pub mad_ms: f64,
    pub ci_low_ms: Option<f64>,
    pub ci_high_ms: Option<f64>,
    pub stale: bool,
    pub first_measured_at: chrono::DateTime<chrono::Utc>,
    pub last_measured_at: chrono::DateTime<chrono::Utc>,
}

impl Db {
    /// Every (device, framework, space) with at least one entry.
    pub async fn table_summaries(&self) -> Result<Vec<TableSummaryRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT e.device_id, d.name AS device_name, e.framework, b.space,
                    count(*) AS entries, count(*) FILTER (WHERE e.stale) AS stale,
                    (SELECT count(*) FROM space_blocks s WHERE s.space = b.space) AS blocks,
                    max(e.last_measured_at) AS last_measured_at,
                    (SELECT c.report->'calibrated' FROM calibrations c
                     WHERE c.device_id = e.device_id AND c.framework = e.framework AND c.space = b.space) AS validation
             FROM table_entries e
             JOIN devices d ON d.id = e.device_id
             JOIN space_blocks b ON b.block_key = e.block_key
             GROUP BY e.device_id, d.name, e.framework, b.space
             ORDER BY d.name, e.framework, b.space",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// The entries of (device, framework) over `space`, in the space's block order.
    pub async fn table_entries(
        &self,
        device: Uuid,
        framework: &str,
        space: &SearchSpace,
    ) -> Result<Vec<EntryDetailRow>, sqlx::Error> {
        let rows: Vec<EntryDetailRow> = sqlx::query_as(
            "SELECT block_key, '' AS part, framework_version, count, min_ms, p10_ms, median_ms,
                    p90_ms, mean_ms, iqr_ms, mad_ms, ci_low_ms, ci_high_ms, stale,
                    first_measured_at, last_measured_at
             FROM table_entries WHERE device_id = $1 AND framework = $2",
        )
        .bind(device)
        .bind(framework)
        .fetch_all(&self.pool)
        .await?;
        // In the space's block order, with each block's part; entries of other spaces' blocks
        // are left out.
        let mut by_key: std::collections::HashMap<String, EntryDetailRow> =
            rows.into_iter().map(|r| (r.block_key.clone(), r)).collect();
        Ok(space
            .distinct_blocks()
            .into_iter()
            .filter_map(|b| {
                by_key.remove(b.block.key.as_str()).map(|mut r| {
                    r.part = b.part.as_str().to_string();
                    r
                })
            })
            .collect())
    }
}

/// The channel on which entry changes are announced, with the device id as payload.
pub const TABLES_CHANNEL: &str = "gpulut_tables";

impl Db {
    /// Follows entry changes forever: `changed(Some(device))` per notification, `changed(None)`
    /// whenever notifications may have been missed (at start, and after the listening
    /// connection was lost).
    pub async fn follow_table_changes(&self, mut changed: impl FnMut(Option<Uuid>) + Send) {
        let mut delay = std::time::Duration::from_millis(200);
        loop {
            match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(TABLES_CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN for table changes failed");
                    } else {
                        changed(None);
                        delay = std::time::Duration::from_millis(200);
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(n)) => changed(Uuid::parse_str(n.payload()).ok()),
                                Ok(None) => {
                                    changed(None);
                                    break;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "table change notifications interrupted");
                                    changed(None);
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for table changes"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    }
}

/// Announces (at commit) that a device's entries changed.
pub(super) async fn notify_table_change(
    tx: &mut sqlx::PgConnection,
    device: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TABLES_CHANNEL)
        .bind(device.to_string())
        .execute(&mut *tx)
        .await
        .map(|_| ())
}
