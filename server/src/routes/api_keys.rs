//! API keys: admins create them for people and scripts, list them, and revoke them; and
//! `whoami`, which tells any caller what its own token is.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Caller, Identity, Role, new_token};
use crate::db::{ApiKeyRow, NewApiKey};
use crate::error::{
    AdminProblems, ApiError, ApiResult, AuthProblems, BadRequest, JsonBodyProblems, Problem,
};
use crate::extract::{ApiJson, ApiPath};

/// Prefix of every API key, so keys are recognisable in logs and secret scanners.
pub const KEY_KIND: &str = "gpulut_key";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Who or what the key is for.
    pub label: String,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<Role>,
    /// Lifetime in seconds; no expiry when absent.
    #[serde(default)]
    pub ttl_s: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub label: String,
    pub role: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        Self {
            id: r.id,
            label: r.label,
            role: r.role,
            prefix: r.prefix,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret. Shown once: only its SHA-256 is stored.
    pub token: String,
}

/// Checks a label: 1 to 200 characters after trimming, no control characters.
pub fn check_label(label: &str) -> ApiResult<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 200 || label.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_label",
            "`label` must be 1 to 200 characters with no control characters",
        ));
    }
    Ok(label.to_string())
}

/// Creates a key; the answer carries the token, which is never shown again.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateApiKey,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "created", body = CreatedApiKey),
        AdminProblems, JsonBodyProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    caller.require_admin()?;
    let label = check_label(&req.label)?;
    let expires_at = match req.ttl_s {
        None => None,
        Some(ttl) if (1..=10 * 365 * 86_400).contains(&ttl) => {
            Some(Utc::now() + chrono::Duration::seconds(ttl))
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_ttl",
                "`ttl_s` must be between 1 second and 10 years",
            ));
        }
    };
    let role = req.role.unwrap_or(Role::User);
    let (token, prefix, digest) = new_token(KEY_KIND);
    let row = state
        .db
        .create_api_key(NewApiKey {
            label: &label,
            role: role.as_str(),
            prefix: &prefix,
            digest: &digest,
            created_by: caller.key_id,
            expires_at,
        })
        .await?;
    tracing::info!(key = %row.id, role = role.as_str(), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: row.into(),
            token,
        }),
    ))
}

/// Lists keys (never their tokens).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<ApiKey>),
        AdminProblems))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<ApiKey>>> {
    caller.require_admin()?;
    let keys = state.db.api_keys().await?;
    Ok(Json(keys.into_iter().map(ApiKey::from).collect()))
}

/// Revokes a key at once: its next request is refused.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the key's id")),
    responses(
        (status = 200, description = "revoked", body = ApiKey),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AdminProblems, BadRequest))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ApiKey>> {
    caller.require_admin()?;
    let row =
        state.db.revoke_api_key(id).await?.ok_or_else(|| {
            ApiError::not_found("no_such_key", format!("there is no API key {id}"))
        })?;
    tracing::info!(key = %row.id, "API key revoked");
    Ok(Json(row.into()))
}

/// What a caller may do: the roles of API keys, and `agent` for an enrolled agent's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallerRole {
    /// Manages keys, tokens, devices and campaigns.
    Admin,
    /// Reads spaces and tables, runs searches.
    User,
    /// Speaks the agent protocol for its own device.
    Agent,
}

impl From<Role> for CallerRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => Self::Admin,
            Role::User => Self::User,
        }
    }
}

/// Which kind of token the caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The admin token the server was started with (`GPULUT_ADMIN_TOKEN`).
    Bootstrap,
    /// An API key.
    ApiKey,
    /// An enrolled agent's token.
    Agent,
}

/// The API key a caller authenticated with (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmIApiKey {
    pub id: Uuid,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The agent a caller is (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmIAgent {
    pub id: Uuid,
    /// The device the agent measures on.
    pub device_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The caller, as its token identifies it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub role: CallerRole,
    pub credential: CredentialKind,
    /// Present when the token is an API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<WhoAmIApiKey>,
    /// Present when the token is an agent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<WhoAmIAgent>,
}

/// Who the caller is: its role and which credential it used.
///
/// Any valid token may ask: the bootstrap admin token, an API key, an agent token. Clients use
/// it to decide what to offer instead of probing admin-only endpoints. Never shows the token or
/// its digest.
#[utoipa::path(get, path = "/v1/whoami", tag = "api-keys", security(("bearer" = [])),
    responses(
        (status = 200, body = WhoAmI),
        AuthProblems))]
pub async fn whoami(identity: Identity) -> Json<WhoAmI> {
    Json(match identity {
        Identity::Bootstrap => WhoAmI {
            role: CallerRole::Admin,
            credential: CredentialKind::Bootstrap,
            api_key: None,
            agent: None,
        },
        Identity::ApiKey { key, role } => WhoAmI {
            role: role.into(),
            credential: CredentialKind::ApiKey,
            api_key: Some(WhoAmIApiKey {
                id: key.id,
                label: key.label,
                created_at: key.created_at,
                expires_at: key.expires_at,
            }),
            agent: None,
        },
        Identity::Agent(a) => WhoAmI {
            role: CallerRole::Agent,
            credential: CredentialKind::Agent,
            api_key: None,
            agent: Some(WhoAmIAgent {
                id: a.id,
                device_id: a.device_id,
                name: a.name,
                created_at: a.created_at,
            }),
        },
    })
}
