//! The agent's side of the agent protocol (DESIGN section 5), over HTTP. Every failure is
//! classified by what the agent must do about it: stop (credentials), drop the job, or retry.

use std::time::Duration;

use gpulut_tables::protocol::{
    ClaimRequest, EnrollRequest, EnrollResponse, HeartbeatRequest, HeartbeatResponse, Job,
    LeaseRef, LeaseRenewed, ResultAck, ResultUpload,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 401/403: the credentials are not (or no longer) valid; the agent must stop.
    #[error("the server refused this agent's credentials: {0}")]
    Unauthorized(String),
    /// 404/410: the job is gone (cancelled or unknown); drop it.
    #[error("gone: {0}")]
    Gone(String),
    /// 409: another attempt holds the job; this attempt's work is void.
    #[error("stale: {0}")]
    Stale(String),
    /// Another 4xx: the request itself is wrong; retrying will not help.
    #[error("the server refused the request ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// Network trouble, timeouts, 5xx, 429: retry with backoff.
    #[error("the server is not reachable: {0}")]
    Transient(String),
    #[error(
        "invalid server URL `{0}`: use http://HOST:PORT (https needs the agent's `tls` feature)"
    )]
    BadUrl(String),
}

impl ClientError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// An HTTP client bound to one server and, once enrolled, one agent token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = reqwest::Url::parse(server.trim_end_matches('/'))
            .map_err(|_| ClientError::BadUrl(server.into()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ClientError::BadUrl(server.into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("gpulut-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transient(e.to_string()))?;
        Ok(Self { http, base, token })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self.http.post(self.url(path)).json(body).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let response = req
            .send()
            .await
            .map_err(|e| ClientError::Transient(format!("POST {path}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        let detail = format!("POST {path}: {detail}");
        Err(match status.as_u16() {
            401 | 403 => ClientError::Unauthorized(detail),
            404 | 410 => ClientError::Gone(detail),
            409 => ClientError::Stale(detail),
            408 | 429 => ClientError::Transient(detail),
            s if status.is_server_error() => ClientError::Transient(format!("{detail} ({s})")),
            s => ClientError::Rejected { status: s, detail },
        })
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let response = self.send(path, body, timeout).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Transient(format!("POST {path}: unreadable answer: {e}")))
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        self.call("/v1/agents/enroll", req, Duration::from_secs(30))
            .await
    }

    pub async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.call("/v1/agents/heartbeat", req, Duration::from_secs(20))
            .await
    }

    /// Long poll for a job: None when none came within `wait_s`.
    pub async fn claim(&self, wait_s: f64) -> Result<Option<Job>, ClientError> {
        let timeout = Duration::from_secs_f64(wait_s.max(0.0) + 20.0);
        let response = self
            .send(
                "/v1/agents/jobs/claim",
                &ClaimRequest {
                    wait_s: Some(wait_s),
                },
                timeout,
            )
            .await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| ClientError::Transient(format!("claim: unreadable job: {e}")))
    }

    pub async fn renew(&self, job: &Job) -> Result<LeaseRenewed, ClientError> {
        let lease = LeaseRef {
            attempt: job.attempt,
            lease_id: job.lease_id.clone(),
            reason: None,
        };
        self.call(
            &format!("/v1/agents/jobs/{}/lease", job.id),
            &lease,
            Duration::from_secs(20),
        )
        .await
    }

    pub async fn release(&self, job: &Job, reason: &str) -> Result<(), ClientError> {
        let lease = LeaseRef {
            attempt: job.attempt,
            lease_id: job.lease_id.clone(),
            reason: Some(reason.to_string()),
        };
        self.send(
            &format!("/v1/agents/jobs/{}/release", job.id),
            &lease,
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    pub async fn upload(
        &self,
        job_id: &str,
        upload: &ResultUpload,
    ) -> Result<ResultAck, ClientError> {
        self.call(
            &format!("/v1/agents/jobs/{job_id}/result"),
            upload,
            Duration::from_secs(120),
        )
        .await
    }
}
