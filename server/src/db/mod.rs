//! All SQL of the server lives under this module; handlers call typed functions. Queries are
//! checked at run time (no build-time database), and every one is exercised by the
//! integration tests against a real Postgres.

mod accuracy;
mod agents;
mod api_keys;
mod calibration;
mod imports;
mod jobs;
mod searches;
mod spaces;
mod tables;

pub use accuracy::{NewSampleSet, SampleSetRow};
pub use agents::{AgentRow, DeviceRow, Enrolled, Enrollment, EnrollmentTokenRow, TokenRefusal};
pub use api_keys::{ApiKeyRow, NewApiKey};
pub use imports::{ImportRefusal, ImportedSeries};
pub use jobs::{
    AgentRevoked, CampaignRow, JobRow, LeaseCheck, NewCampaign, NewJob, NewMeasurement, Progress,
};
pub use searches::{FrontRow, GenerationRecord, Ownership, SearchRow};
pub use spaces::StoredSpace;
pub use tables::{DeviceRef, EntryDetailRow, TableSummaryRow};

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The migrations in `migrations/` at the workspace root, embedded in the binary so a deployed
/// server needs nothing beside it.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Opens a pool without waiting for the database: connections are made on first use, so a
    /// server can start before Postgres and report it through `/readyz`.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations. sqlx holds a Postgres advisory lock meanwhile, so replicas
    /// starting together migrate once.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
