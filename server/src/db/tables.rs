//! Latency tables as the search and predictions read them: the entries of one
//! (device, framework), restricted to the blocks of a space.

use gpulut_tables::{BlockKey, LatencyTable, TableEntry};
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

    /// The table of (device, framework) over the blocks of `space`.
    pub async fn latency_table(
        &self,
        device: Uuid,
        framework: &str,
        space: &str,
    ) -> Result<LatencyTable, sqlx::Error> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT e.block_key, e.count, e.min_ms, e.p10_ms, e.median_ms, e.p90_ms, e.mean_ms,
                    e.iqr_ms, e.mad_ms, e.ci_low_ms, e.ci_high_ms
             FROM table_entries e
             JOIN space_blocks b ON b.block_key = e.block_key AND b.space = $3
             WHERE e.device_id = $1 AND e.framework = $2",
        )
        .bind(device)
        .bind(framework)
        .bind(space)
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
