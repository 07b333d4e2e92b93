//! The `http` accuracy source: the user's own evaluator service (for example a supernet that
//! scores architectures on a validation split), called in batches with timeouts and retries.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use gpulut_search::Genome;
use gpulut_search::evaluator::{AccuracyEvaluator, EvalError};
use serde::{Deserialize, Serialize};

const DEFAULT_TIMEOUT_S: f64 = 30.0;
const DEFAULT_BATCH: usize = 256;
const DEFAULT_RETRIES: u32 = 3;

pub struct HttpEvaluator {
    space: String,
    url: reqwest::Url,
    client: reqwest::Client,
    batch_size: usize,
    retries: u32,
}

#[derive(Serialize)]
struct Request<'a> {
    space: &'a str,
    archs: Vec<ArchOut>,
}

#[derive(Serialize)]
struct ArchOut {
    /// Hex text form.
    arch: String,
    choices: Vec<u8>,
}

#[derive(Deserialize)]
struct Answer {
    accuracy: Vec<f64>,
}

/// One failed attempt, and whether another attempt may help.
struct Attempt {
    retry: bool,
    error: EvalError,
}

fn hex(g: &[u8]) -> String {
    g.iter().map(|c| format!("{c:x}")).collect()
}

impl HttpEvaluator {
    /// Checks the settings; the message says what is wrong.
    pub fn new(
        space: &str,
        url: &str,
        timeout_s: Option<f64>,
        batch_size: Option<usize>,
        retries: Option<u32>,
    ) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("accuracy.url `{url}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "accuracy.url must be http or https, got `{}`",
                parsed.scheme()
            ));
        }
        let timeout = timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
        if !(timeout.is_finite() && (0.1..=600.0).contains(&timeout)) {
            return Err(format!(
                "accuracy.timeout_s must be 0.1 to 600, got {timeout}"
            ));
        }
        let batch_size = batch_size.unwrap_or(DEFAULT_BATCH);
        if !(1..=10_000).contains(&batch_size) {
            return Err(format!(
                "accuracy.batch_size must be 1 to 10000, got {batch_size}"
            ));
        }
        let retries = retries.unwrap_or(DEFAULT_RETRIES);
        if retries > 10 {
            return Err(format!(
                "accuracy.retries must be at most 10, got {retries}"
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(timeout))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            space: space.to_string(),
            url: parsed,
            client,
            batch_size,
            retries,
        })
    }

    async fn attempt(&self, batch: &[Genome]) -> Result<Vec<f64>, Attempt> {
        let body = Request {
            space: &self.space,
            archs: batch
                .iter()
                .map(|g| ArchOut {
                    arch: hex(g),
                    choices: g.clone(),
                })
                .collect(),
        };
        let url = &self.url;
        let response = self
            .client
            .post(url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| Attempt {
                retry: true,
                error: EvalError::Unreachable(format!("POST {url}: {e}")),
            })?;
        let status = response.status();
        if !status.is_success() {
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            return Err(Attempt {
                // Server errors and throttling may pass; other client errors will not.
                retry: status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408,
                error: EvalError::Unreachable(format!("POST {url} answered {status}: {text}")),
            });
        }
        let nonsense = |detail: String| Attempt {
            retry: false,
            error: EvalError::InvalidAnswer(format!("POST {url}: {detail}")),
        };
        let bytes = response.bytes().await.map_err(|e| Attempt {
            retry: true,
            error: EvalError::Unreachable(format!("POST {url}: reading the answer: {e}")),
        })?;
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| nonsense(format!("expected {{\"accuracy\": [numbers]}}: {e}")))?;
        if answer.accuracy.len() != batch.len() {
            return Err(nonsense(format!(
                "{} accuracies for {} architectures",
                answer.accuracy.len(),
                batch.len()
            )));
        }
        if let Some((i, a)) = answer
            .accuracy
            .iter()
            .enumerate()
            .find(|(_, a)| !a.is_finite())
        {
            return Err(nonsense(format!(
                "accuracy[{i}] is {a}, not a finite number"
            )));
        }
        Ok(answer.accuracy)
    }

    async fn evaluate_chunk(&self, chunk: &[Genome]) -> Result<Vec<f64>, EvalError> {
        (|| self.attempt(chunk))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(self.retries as usize)
                    .with_jitter(),
            )
            .when(|a| a.retry)
            .notify(|a, wait| tracing::warn!(error = %a.error, ?wait, "accuracy evaluator failed; retrying"))
            .await
            .map_err(|a| match a.error {
                EvalError::Unreachable(m) if a.retry => EvalError::Unreachable(format!(
                    "{m} (gave up after {} attempts)",
                    self.retries + 1
                )),
                other => other,
            })
    }
}

impl AccuracyEvaluator for HttpEvaluator {
    async fn evaluate(&self, batch: &[Genome]) -> Result<Vec<f64>, EvalError> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(self.batch_size) {
            out.extend(self.evaluate_chunk(chunk).await?);
        }
        Ok(out)
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    /// Top-1 in percent: the natural range when the service says nothing more.
    fn bounds(&self) -> Option<(f64, f64)> {
        Some((0.0, 100.0))
    }
}
