//! Accuracy sample sets: the user's measured (architecture, top-1) pairs and the surrogate
//! fitted to them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SampleSetRow {
    pub id: Uuid,
    pub space: String,
    pub label: String,
    pub samples: serde_json::Value,
    pub surrogate: serde_json::Value,
    pub report: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

pub struct NewSampleSet<'a> {
    pub space: &'a str,
    pub label: &'a str,
    pub samples: &'a serde_json::Value,
    pub surrogate: &'a serde_json::Value,
    pub report: &'a serde_json::Value,
    pub created_by: Option<Uuid>,
}

impl Db {
    pub async fn create_accuracy_sample_set(
        &self,
        s: NewSampleSet<'_>,
    ) -> Result<SampleSetRow, sqlx::Error> {
        sqlx::query_as(
            "INSERT INTO accuracy_sample_sets (space, label, samples, surrogate, report, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, space, label, samples, surrogate, report, created_at",
        )
        .bind(s.space)
        .bind(s.label)
        .bind(s.samples)
        .bind(s.surrogate)
        .bind(s.report)
        .bind(s.created_by)
        .fetch_one(&self.pool)
        .await
    }

    /// A sample set with a fitted surrogate.
    pub async fn accuracy_sample_set(&self, id: Uuid) -> Result<Option<SampleSetRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, space, label, samples, surrogate, report, created_at
             FROM accuracy_sample_sets WHERE id = $1 AND surrogate IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }
}
