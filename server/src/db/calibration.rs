//! Validation of tables against whole networks, and their stored calibrations.

use gpulut_tables::validation::{self, Calibration, Observation, STATISTICS, ValidationReport};
use gpulut_tables::{ArchSpec, SearchSpace};
use uuid::Uuid;

use super::Db;

impl Db {
    /// Every verified end-to-end sample of (device, framework) in a space, by architecture text.
    pub async fn network_samples(
        &self,
        device: Uuid,
        framework: &str,
        space: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<f64>>, sqlx::Error> {
        let rows: Vec<(String, Vec<f64>)> = sqlx::query_as(
            "SELECT key, samples_ms FROM measurements
             WHERE device_id = $1 AND framework = $2 AND kind = 'network' AND space = $3 AND verified
             ORDER BY key, id",
        )
        .bind(device)
        .bind(framework)
        .bind(space)
        .fetch_all(&self.pool)
        .await?;
        let mut samples: std::collections::BTreeMap<String, Vec<f64>> =
            std::collections::BTreeMap::new();
        for (key, s) in rows {
            samples.entry(key).or_default().extend(s);
        }
        Ok(samples)
    }

    /// Refits the calibration of (device, framework, space) from every network measured end to
    /// end on it, and stores it with its report. Returns None when there are too few complete
    /// networks to fit (nothing is stored then).
    pub async fn refit_calibration(
        &self,
        device: Uuid,
        framework: &str,
        space: &SearchSpace,
    ) -> Result<Option<(Calibration, ValidationReport)>, sqlx::Error> {
        let samples = self
            .network_samples(device, framework, space.name())
            .await?;
        let table = self.latency_table(device, framework).await?;
        let mut observations = Vec::new();
        for (key, s) in samples {
            let (Ok(arch), Ok(summary)) = (
                space.resolve(&ArchSpec::from(key.as_str())),
                gpulut_tables::Summary::from_samples(&s),
            ) else {
                continue;
            };
            let blocks = space.expand(&arch);
            observations.push(Observation {
                arch: key,
                blocks: blocks.len(),
                measured_ms: summary.median,
                predicted_ms: STATISTICS.map(|stat| table.predict(&blocks, stat).total_ms),
            });
        }
        let Some((cal, report)) = validation::validate(&observations) else {
            return Ok(None);
        };
        let model = serde_json::to_value(cal).expect("a calibration serialises");
        let report_json = serde_json::to_value(&report).expect("a report serialises");
        sqlx::query(
            "INSERT INTO calibrations (device_id, framework, space, model, report, fitted_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (device_id, framework, space) DO UPDATE
             SET model = EXCLUDED.model, report = EXCLUDED.report, fitted_at = now()",
        )
        .bind(device)
        .bind(framework)
        .bind(space.name())
        .bind(&model)
        .bind(&report_json)
        .execute(&self.pool)
        .await?;
        Ok(Some((cal, report)))
    }

    /// The stored calibration and report of a table, with when it was fitted.
    pub async fn calibration(
        &self,
        device: Uuid,
        framework: &str,
        space: &str,
    ) -> Result<
        Option<(
            serde_json::Value,
            serde_json::Value,
            chrono::DateTime<chrono::Utc>,
        )>,
        sqlx::Error,
    > {
        sqlx::query_as(
            "SELECT model, report, fitted_at FROM calibrations WHERE device_id = $1 AND framework = $2 AND space = $3",
        )
        .bind(device)
        .bind(framework)
        .bind(space)
        .fetch_optional(&self.pool)
        .await
    }
}
