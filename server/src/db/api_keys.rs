use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub label: String,
    pub role: String,
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub struct NewApiKey<'a> {
    pub label: &'a str,
    pub role: &'a str,
    pub prefix: &'a str,
    pub digest: &'a [u8; 32],
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The columns every query returns, in the row struct's order.
macro_rules! api_key_columns {
    () => {
        "id, label, role, prefix, created_by, expires_at, revoked_at, last_used_at, created_at"
    };
}

impl Db {
    pub async fn create_api_key(&self, k: NewApiKey<'_>) -> Result<ApiKeyRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "INSERT INTO api_keys (label, role, prefix, token_sha256, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            api_key_columns!(),
            ""
        ))
        .bind(k.label)
        .bind(k.role)
        .bind(k.prefix)
        .bind(&k.digest[..])
        .bind(k.created_by)
        .bind(k.expires_at)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn api_key_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE token_sha256 = $1"
        ))
        .bind(&digest[..])
        .fetch_optional(&self.pool)
        .await
    }

    /// Records use at most once a minute per key, so reads do not turn into a write each.
    pub async fn touch_api_key(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now()
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Revokes a key; revoking twice keeps the first time. None when there is no such key.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
             WHERE id = $1 RETURNING ",
            api_key_columns!(),
            ""
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }
}
