//! Who is calling. Bearer tokens everywhere: the bootstrap admin token from the environment,
//! API keys that an admin creates, and the tokens enrolled agents get. Tokens are 256-bit
//! random strings shown once; the database keeps only their SHA-256, so a leaked database does
//! not leak working credentials.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::{AgentRow, ApiKeyRow};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages keys, tokens, devices and campaigns.
    Admin,
    /// Reads spaces and tables, runs searches.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// An authenticated caller. Extracting it refuses requests without a valid token (401).
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// The API key used; None for the bootstrap admin token.
    pub key_id: Option<Uuid>,
}

impl Caller {
    /// Refuses (403) callers that are not admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::User => Err(ApiError::forbidden("this endpoint needs an admin token")),
        }
    }
}

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh secret: `{kind}_` and 64 hex digits (256 random bits). Returns the token, its
/// non-secret display prefix and its digest.
pub fn new_token(kind: &str) -> (String, String, TokenDigest) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{kind}_{}", hex::encode(bytes));
    let prefix = token[..kind.len() + 1 + 8].to_string();
    let d = digest(&token);
    (token, prefix, d)
}

/// The bearer token of a request, or why there is none.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
    })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    if token.len() > 256 {
        return Err(ApiError::unauthorized(
            "the bearer token is not a gpulut token",
        ));
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let d = digest(bearer(parts)?);
        if is_bootstrap(state, &d) {
            return Ok(Caller {
                role: Role::Admin,
                key_id: None,
            });
        }
        let (key, role) = api_key(state, &d)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or invalid token"))?;
        Ok(Caller {
            role,
            key_id: Some(key.id),
        })
    }
}

/// Whether `d` is the digest of the bootstrap admin token (compared in constant time).
fn is_bootstrap(state: &AppState, d: &TokenDigest) -> bool {
    digest_matches(state.admin_token_digest.as_ref(), d)
}

/// Compares in constant time, so response times say nothing about how much of a guess was
/// right; no configured digest matches nothing.
fn digest_matches(expected: Option<&TokenDigest>, d: &TokenDigest) -> bool {
    expected.is_some_and(|e| bool::from(d.ct_eq(e)))
}

/// The live API key with digest `d` and its role; None when no key has it; 401 when it was
/// revoked or has expired. Records the use.
async fn api_key(state: &AppState, d: &TokenDigest) -> Result<Option<(ApiKeyRow, Role)>, ApiError> {
    let Some(key) = state.db.api_key_by_digest(d).await? else {
        return Ok(None);
    };
    if key.revoked_at.is_some() {
        return Err(ApiError::unauthorized(format!(
            "API key {} was revoked",
            key.prefix
        )));
    }
    if key.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(ApiError::unauthorized(format!(
            "API key {} has expired",
            key.prefix
        )));
    }
    state.db.touch_api_key(key.id).await?;
    let role = Role::parse(&key.role)
        .ok_or_else(|| ApiError::Internal(format!("API key {} has role {}", key.id, key.role)))?;
    Ok(Some((key, role)))
}

/// The agent with token digest `d`; None when no agent has it; 401 when it was revoked.
async fn agent(state: &AppState, d: &TokenDigest) -> Result<Option<AgentRow>, ApiError> {
    let Some(agent) = state.db.agent_by_digest(d).await? else {
        return Ok(None);
    };
    if agent.revoked_at.is_some() {
        return Err(ApiError::unauthorized(format!(
            "agent {} was revoked; enroll again with a new enrollment token",
            agent.prefix
        )));
    }
    Ok(Some(agent))
}

/// Whoever holds a valid token of any kind: the bootstrap admin token, an API key, or an
/// agent token. For endpoints every credential may call (`/v1/whoami`); extracting it refuses
/// requests without a valid token (401).
#[derive(Debug, Clone)]
pub enum Identity {
    /// The admin token the server was started with.
    Bootstrap,
    /// An API key, with its role.
    ApiKey { key: ApiKeyRow, role: Role },
    /// An enrolled agent.
    Agent(AgentRow),
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let d = digest(bearer(parts)?);
        if is_bootstrap(state, &d) {
            return Ok(Identity::Bootstrap);
        }
        if let Some((key, role)) = api_key(state, &d).await? {
            return Ok(Identity::ApiKey { key, role });
        }
        if let Some(agent) = agent(state, &d).await? {
            return Ok(Identity::Agent(agent));
        }
        Err(ApiError::unauthorized("unknown or invalid token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let (a, prefix, d) = new_token("gpulut_key");
        let (b, _, _) = new_token("gpulut_key");
        assert_ne!(a, b);
        assert!(a.starts_with("gpulut_key_"));
        assert_eq!(a.len(), "gpulut_key_".len() + 64);
        assert!(a.starts_with(&prefix) && prefix.len() < a.len() / 2);
        assert_eq!(d, digest(&a));
    }

    /// Lookups go by the token's SHA-256, never by the token: a token one character away from a
    /// real one looks up an unrelated digest (no shared prefix for an index or a comparison to
    /// leak through), and only the exact bootstrap token matches its digest.
    #[test]
    fn lookups_go_by_digest_and_the_bootstrap_token_matches_exactly() {
        let (token, _, d) = new_token("gpulut_key");
        assert_eq!(d.to_vec(), Sha256::digest(token.as_bytes()).to_vec());
        let last = token.chars().last().unwrap();
        let near = format!(
            "{}{}",
            &token[..token.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        let n = digest(&near);
        let same = d.iter().zip(n.iter()).filter(|(a, b)| a == b).count();
        assert!(same < 8, "{same} of 32 digest bytes alike");
        assert_ne!(d[..4], n[..4]);

        let admin = "bootstrap-admin-token-0123456789";
        let configured = digest(admin);
        assert!(digest_matches(Some(&configured), &digest(admin)));
        for other in [
            "bootstrap-admin-token-012345678",
            "bootstrap-admin-token-0123456788",
            "bootstrap-admin-token-01234567890",
            "Bootstrap-admin-token-0123456789",
            " bootstrap-admin-token-0123456789",
            "",
        ] {
            assert!(
                !digest_matches(Some(&configured), &digest(other)),
                "{other:?} is not the bootstrap token"
            );
        }
        // No bootstrap token configured: nothing is one, the empty token included.
        assert!(!digest_matches(None, &digest(admin)));
        assert!(!digest_matches(None, &digest("")));
    }
}

/// Prefix of agent tokens.
pub const AGENT_KIND: &str = "gpulut_agent";
/// Prefix of enrollment tokens.
pub const ENROLLMENT_KIND: &str = "gpulut_enroll";

/// An enrolled agent calling the agent endpoints with its own token; it acts for its device
/// only.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub agent_id: Uuid,
    pub device_id: Uuid,
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let d = digest(bearer(parts)?);
        let agent = agent(state, &d)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown agent token; enroll the agent again"))?;
        Ok(AgentCaller {
            agent_id: agent.id,
            device_id: agent.device_id,
        })
    }
}
