//! Enrollment tokens, devices and agents.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrollmentTokenRow {
    pub id: Uuid,
    pub label: String,
    pub prefix: String,
    pub device_labels: Vec<String>,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! token_columns {
    () => {
        "id, label, prefix, device_labels, max_uses, uses, expires_at, revoked_at, created_at"
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: Uuid,
    pub name: String,
    pub fingerprint: serde_json::Value,
    pub labels: Vec<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub agents: i64,
    /// The framework reports of the device's live agents, oldest agent first: one element per
    /// agent, null for an agent that never reported.
    pub agent_frameworks: serde_json::Value,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub device_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub agent_version: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// `[FrameworkSupport]` as last reported; None when the agent never reported.
    pub frameworks: Option<serde_json::Value>,
    pub frameworks_reported_at: Option<DateTime<Utc>>,
}

macro_rules! agent_columns {
    () => {
        "id, device_id, name, prefix, agent_version, last_heartbeat_at, revoked_at, created_at, frameworks, frameworks_reported_at"
    };
}

macro_rules! device_columns {
    () => {
        "d.id, d.name, d.fingerprint, d.labels, d.last_seen_at, d.created_at,
         (SELECT count(*) FROM agents a WHERE a.device_id = d.id AND a.revoked_at IS NULL) AS agents,
         (SELECT coalesce(jsonb_agg(a.frameworks ORDER BY a.created_at, a.id), '[]'::jsonb)
            FROM agents a WHERE a.device_id = d.id AND a.revoked_at IS NULL) AS agent_frameworks"
    };
}

/// Why an enrollment token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
    Exhausted,
}

/// id, device labels, max uses, uses, expiry, revocation of an enrollment token.
type TokenState = (
    Uuid,
    Vec<String>,
    i32,
    i32,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

pub struct Enrollment<'a> {
    pub token_digest: &'a [u8; 32],
    pub identity: &'a str,
    pub name: &'a str,
    pub fingerprint: &'a serde_json::Value,
    pub agent_prefix: &'a str,
    pub agent_digest: &'a [u8; 32],
    pub agent_version: &'a str,
    /// The agent's framework report; None when it sent none (an older agent).
    pub frameworks: Option<&'a serde_json::Value>,
}

pub struct Enrolled {
    pub agent_id: Uuid,
    pub device_id: Uuid,
    pub device_name: String,
}

impl Db {
    #[allow(clippy::too_many_arguments)]
    pub async fn create_enrollment_token(
        &self,
        label: &str,
        prefix: &str,
        digest: &[u8; 32],
        device_labels: &[String],
        max_uses: i32,
        expires_at: DateTime<Utc>,
        created_by: Option<Uuid>,
    ) -> Result<EnrollmentTokenRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "INSERT INTO enrollment_tokens (label, prefix, token_sha256, device_labels, max_uses, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            token_columns!()
        ))
        .bind(label)
        .bind(prefix)
        .bind(&digest[..])
        .bind(device_labels)
        .bind(max_uses)
        .bind(expires_at)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM enrollment_tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn revoke_enrollment_token(
        &self,
        id: Uuid,
    ) -> Result<Option<EnrollmentTokenRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ",
            token_columns!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Spends one use of the token and enrolls: the device is found by identity (keeping its id
    /// and history) or created, earlier agents of the device are revoked, and a new agent is
    /// made. All or nothing.
    pub async fn enroll(
        &self,
        e: Enrollment<'_>,
    ) -> Result<Result<Enrolled, TokenRefusal>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let token: Option<TokenState> = sqlx::query_as(
            "SELECT id, device_labels, max_uses, uses, expires_at, revoked_at
             FROM enrollment_tokens WHERE token_sha256 = $1 FOR UPDATE",
        )
        .bind(&e.token_digest[..])
        .fetch_optional(&mut *tx)
        .await?;
        let Some((token_id, labels, max_uses, uses, expires_at, revoked_at)) = token else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        if revoked_at.is_some() {
            return Ok(Err(TokenRefusal::Revoked));
        }
        if expires_at <= Utc::now() {
            return Ok(Err(TokenRefusal::Expired));
        }
        if uses >= max_uses {
            return Ok(Err(TokenRefusal::Exhausted));
        }
        sqlx::query("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1")
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        let (device_id, device_name): (Uuid, String) = sqlx::query_as(
            "INSERT INTO devices (name, identity, fingerprint, labels, status, last_seen_at)
             VALUES ($1, $2, $3, $4, 'online', now())
             ON CONFLICT (identity) DO UPDATE SET
                 fingerprint = EXCLUDED.fingerprint,
                 labels = ARRAY(SELECT DISTINCT unnest(devices.labels || EXCLUDED.labels) ORDER BY 1),
                 status = 'online', last_seen_at = now()
             RETURNING id, name",
        )
        .bind(e.name)
        .bind(e.identity)
        .bind(e.fingerprint)
        .bind(&labels)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE agents SET revoked_at = now() WHERE device_id = $1 AND revoked_at IS NULL",
        )
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        let (agent_id,): (Uuid,) = sqlx::query_as(
            "INSERT INTO agents (device_id, enrollment_token_id, name, prefix, token_sha256, agent_version, last_heartbeat_at,
                                 frameworks, frameworks_reported_at)
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7, CASE WHEN $7::jsonb IS NULL THEN NULL ELSE now() END) RETURNING id",
        )
        .bind(device_id)
        .bind(token_id)
        .bind(e.name)
        .bind(e.agent_prefix)
        .bind(&e.agent_digest[..])
        .bind(e.agent_version)
        .bind(e.frameworks)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(Enrolled {
            agent_id,
            device_id,
            device_name,
        }))
    }

    pub async fn agent_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<AgentRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            agent_columns!(),
            " FROM agents WHERE token_sha256 = $1"
        ))
        .bind(&digest[..])
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn agents(&self) -> Result<Vec<AgentRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            agent_columns!(),
            " FROM agents ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn revoke_agent(&self, id: Uuid) -> Result<Option<AgentRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE agents SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ",
            agent_columns!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a heartbeat of the agent and its device, and the agent's framework report when
    /// the heartbeat carries one (None keeps the last report).
    pub async fn heartbeat_agent(
        &self,
        agent: Uuid,
        device: Uuid,
        version: Option<&str>,
        frameworks: Option<&serde_json::Value>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The device row first, then the agent's: the same lock order as `enroll` (which
        // upserts the device, then revokes its agents), so a heartbeat racing a re-enrollment
        // of its device waits instead of deadlocking (Postgres aborted one of them: a 500).
        sqlx::query("UPDATE devices SET last_seen_at = now(), status = 'online' WHERE id = $1 AND status <> 'retired'")
            .bind(device)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE agents SET last_heartbeat_at = now(), agent_version = COALESCE($2, agent_version),
                 frameworks = COALESCE($3, frameworks),
                 frameworks_reported_at = CASE WHEN $3::jsonb IS NULL THEN frameworks_reported_at ELSE now() END
             WHERE id = $1",
        )
            .bind(agent)
            .bind(version)
            .bind(frameworks)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices d ORDER BY d.created_at, d.id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn device(&self, id: Uuid) -> Result<Option<DeviceRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices d WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Devices carrying every one of `labels`.
    pub async fn devices_with_labels(&self, labels: &[String]) -> Result<Vec<Uuid>, sqlx::Error> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM devices WHERE labels @> $1 AND status <> 'retired' ORDER BY created_at",
        )
        .bind(labels)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Registers the frameworks the agent implements (idempotent, at start).
    pub async fn register_native_frameworks(
        &self,
        names: &[(&str, &str)],
    ) -> Result<(), sqlx::Error> {
        for (id, description) in names {
            sqlx::query(
                "INSERT INTO frameworks (id, kind, description) VALUES ($1, 'native', $2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(description)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Registers the other runtimes agents measure with (idempotent, at start). A name first
    /// seen through an import (kind `imported`) becomes a `runtime`: its imported entries stay.
    pub async fn register_runtime_frameworks(
        &self,
        names: &[(&str, &str)],
    ) -> Result<(), sqlx::Error> {
        for (id, description) in names {
            sqlx::query(
                "INSERT INTO frameworks (id, kind, description) VALUES ($1, 'runtime', $2)
                 ON CONFLICT (id) DO UPDATE SET kind = 'runtime', description = EXCLUDED.description
                 WHERE frameworks.kind = 'imported'",
            )
            .bind(id)
            .bind(description)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// The framework reports of a device's live (not revoked) agents, oldest first: one element
    /// per agent, None for an agent that never reported.
    pub async fn device_framework_reports(
        &self,
        device: Uuid,
    ) -> Result<Vec<Option<serde_json::Value>>, sqlx::Error> {
        let rows: Vec<(Option<serde_json::Value>,)> = sqlx::query_as(
            "SELECT frameworks FROM agents WHERE device_id = $1 AND revoked_at IS NULL
             ORDER BY created_at, id",
        )
        .bind(device)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
