//! Simulated agents: the real agent protocol (DESIGN section 5) without a GPU. Each agent
//! enrolls with a device fingerprint (agents that share one share a device), heartbeats on the
//! server's cadence, long-polls for jobs, "measures" for a configurable time while renewing its
//! lease, and uploads synthetic but valid samples for every item. Like the real agent it keeps a
//! result until the server acknowledges it: uploads are retried with capped, jittered backoff on
//! transport errors, 5xx and 429; a fenced job (404, 409, 410) is dropped; 401/403 stop the
//! agent. Everything is counted, so a run can compare what the server acknowledged with what
//! the database holds.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpulut_tables::protocol::{
    ClaimRequest, EnrollRequest, EnrollResponse, FrameworkSupport, HeartbeatRequest, Job, JobKind,
    LeaseRef, ResultAck, ResultUpload,
};
use gpulut_tables::wire::{
    BlockMeasurement, DeviceFingerprint, GpuFingerprint, MeasuredKind, StopReason, TimerKind,
};
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::stats::{EndpointFigures, Outcome, Recorder};

/// The framework simulated agents report and measure: the built-in kernel set, so campaigns
/// need no external runtime.
pub const FRAMEWORK: &str = "wgpu-fused";
pub const FRAMEWORK_VERSION: &str = "1";
pub const AGENT_VERSION: &str = concat!("proof-", env!("CARGO_PKG_VERSION"));

/// Statuses that fence a job out (no such job, stale lease, cancelled): drop it, never retry.
const FENCED: [u16; 3] = [404, 409, 410];
/// Longest wait between two retries.
const BACKOFF_CAP: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    pub enrollment_token: String,
    pub agents: usize,
    pub devices: usize,
    /// Device `i` gets hardware id `{prefix}-{i}`: the same prefix and count enroll into the
    /// same devices again after a restart.
    pub fingerprint_prefix: String,
    /// Samples per measured item.
    pub samples: usize,
    /// Fake measuring time per job; each job draws from [work/2, 3*work/2].
    pub work_ms: u64,
    /// Longest claim long poll to ask for; None asks for the server's cadence.
    pub claim_wait_s: Option<f64>,
}

impl AgentOptions {
    pub fn new(server: &str, enrollment_token: &str, agents: usize, devices: usize) -> Self {
        Self {
            server: server.trim_end_matches('/').to_string(),
            enrollment_token: enrollment_token.to_string(),
            agents,
            devices: devices.max(1),
            fingerprint_prefix: "proof".into(),
            samples: 30,
            work_ms: 100,
            claim_wait_s: None,
        }
    }
}

/// What the agents of one process did. Series and samples are counted per acknowledged
/// (job, attempt): a first acknowledgement (`duplicate: false`) and one that says an earlier,
/// unanswered upload of ours had already been stored (`duplicate: true`) are kept apart.
#[derive(Debug, Default)]
pub struct Counters {
    pub enrolled: AtomicU64,
    pub jobs_claimed: AtomicU64,
    pub uploads_acked: AtomicU64,
    pub uploads_duplicate: AtomicU64,
    pub series_stored: AtomicU64,
    pub series_stored_duplicate: AtomicU64,
    pub samples_acked: AtomicU64,
    pub samples_duplicate: AtomicU64,
    pub retries: AtomicU64,
    pub fenced_dropped: AtomicU64,
    /// Uploads the server refused as invalid (422, 413, ...): a bug in the simulation.
    pub rejected: AtomicU64,
    /// Results measured and not yet acknowledged or dropped.
    pub pending: AtomicU64,
    /// Jobs claimed and not yet finished (measuring or uploading).
    pub busy: AtomicU64,
    /// Milliseconds since the fleet started at the last claim or acknowledgement.
    last_activity_ms: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn error(&self, kind: String) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The stats document of an `agents` run (see proof/INTERFACE.md).
#[derive(Debug, Clone, Serialize)]
pub struct AgentStats {
    pub agents: usize,
    pub devices: usize,
    pub elapsed_s: f64,
    pub enrolled: u64,
    pub jobs_claimed: u64,
    pub uploads_acked: u64,
    pub uploads_duplicate: u64,
    pub series_stored: u64,
    pub series_stored_duplicate: u64,
    pub samples_acked: u64,
    pub samples_duplicate: u64,
    pub retries: u64,
    pub fenced_dropped: u64,
    pub rejected: u64,
    pub pending_at_exit: u64,
    pub errors: BTreeMap<String, u64>,
    pub device_ids: Vec<String>,
    pub endpoints: Vec<EndpointFigures>,
}

struct Shared {
    opts: AgentOptions,
    client: reqwest::Client,
    counters: Counters,
    recorder: Recorder,
    started: Instant,
    /// Set: stop claiming, finish what is in hand.
    stopping: watch::Sender<bool>,
    /// Set: give up now, even on pending uploads.
    abort: watch::Sender<bool>,
    devices: Mutex<BTreeSet<String>>,
    /// Devices with at least one acknowledged upload (their tables exist).
    measured: Mutex<BTreeSet<String>>,
}

/// A running fleet of simulated agents in this process's tokio runtime.
pub struct Fleet {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

/// Why an agent stopped early.
#[derive(Debug)]
enum Stop {
    /// Asked to stop (or abort).
    Asked,
    /// 401/403: the credentials are no good.
    Refused,
}

struct Reply {
    status: Option<u16>,
    body: Vec<u8>,
}

/// Full jitter over an exponential backoff, capped.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = Duration::from_millis(100) * 2u32.saturating_pow(self.0.min(8));
        self.0 += 1;
        let cap = base.min(BACKOFF_CAP);
        cap.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// A block's synthetic samples: deterministic in the key and count, positive and finite,
/// spread around a per-key base time so table entries differ between blocks.
pub fn synthetic_samples(key: &str, n: usize) -> Vec<f64> {
    // FNV-1a: stable across runs and platforms.
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let base = 0.05 + (h % 5000) as f64 / 1000.0;
    (0..n.max(1))
        .map(|j| base * (1.0 + 0.04 * (((j * 37) % 11) as f64 / 10.0 - 0.5)))
        .collect()
}

fn measurement(job: &Job, key: &str, samples: usize) -> BlockMeasurement {
    let samples = synthetic_samples(key, samples);
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    BlockMeasurement {
        key: key.to_string(),
        kind: match job.kind {
            JobKind::Blocks => MeasuredKind::Block,
            JobKind::Networks => MeasuredKind::Arch,
        },
        name: None,
        framework: job.framework.clone(),
        framework_version: FRAMEWORK_VERSION.into(),
        verified: true,
        max_relative_error: Some(1e-6),
        tolerance: 1e-4,
        error: None,
        median_ms: Some(sorted[sorted.len() / 2]),
        timer: Some(TimerKind::GpuTimestamp),
        wall_samples: Vec::new(),
        warmup_runs: 10,
        stopped_by: Some(StopReason::Converged),
        pipeline_ms: 1.0,
        dispatches: 1,
        flops: 1000,
        bytes: 1000,
        state_start: None,
        state_end: None,
        samples,
    }
}

/// The fingerprint of simulated device `i`.
pub fn fingerprint(prefix: &str, i: usize) -> DeviceFingerprint {
    DeviceFingerprint {
        model: Some(format!("Proof Phone {i}")),
        manufacturer: Some("gpulut-proof".into()),
        soc: Some("Simulated SoC".into()),
        hardware_id: Some(format!("{prefix}-{i}")),
        os: "android".into(),
        os_version: Some("14".into()),
        android_api_level: Some(34),
        gpu: GpuFingerprint {
            name: "Simulated GPU".into(),
            vendor_id: 0x13b5,
            device_id: 1,
            device_type: "integrated-gpu".into(),
            backend: "vulkan".into(),
            driver: "sim".into(),
            driver_version: "1".into(),
            api_version: Some("1.3.0".into()),
            timestamp_query: true,
            timestamp_period_ns: Some(1.0),
        },
        agent_version: AGENT_VERSION.into(),
    }
}

fn frameworks() -> Vec<FrameworkSupport> {
    vec![FrameworkSupport {
        name: FRAMEWORK.into(),
        version: FRAMEWORK_VERSION.into(),
        available: true,
        detail: None,
    }]
}

impl Fleet {
    /// Starts `opts.agents` agents on the current tokio runtime.
    pub fn spawn(opts: AgentOptions) -> anyhow::Result<Fleet> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        let (stopping, _) = watch::channel(false);
        let (abort, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            opts,
            client,
            counters: Counters::default(),
            recorder: Recorder::default(),
            started: Instant::now(),
            stopping,
            abort,
            devices: Mutex::default(),
            measured: Mutex::default(),
        });
        let mut tasks = JoinSet::new();
        for i in 0..shared.opts.agents {
            let s = shared.clone();
            tasks.spawn(async move { s.agent(i).await });
        }
        Ok(Fleet { shared, tasks })
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    /// Devices with at least one acknowledged upload.
    pub fn measured_devices(&self) -> Vec<String> {
        self.shared
            .measured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Device ids the agents enrolled into.
    pub fn device_ids(&self) -> Vec<String> {
        self.shared
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// How long no job was claimed or acknowledged while none was in hand; zero while busy.
    pub fn idle_for(&self) -> Duration {
        let c = &self.shared.counters;
        if c.busy.load(Ordering::SeqCst) > 0 || c.pending.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(c.last_activity_ms.load(Ordering::SeqCst));
        self.shared.started.elapsed().saturating_sub(last)
    }

    /// Whether every agent task has ended (all stopped on 401/403, for example).
    pub fn finished(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops claiming, lets jobs in hand finish and their uploads be acknowledged for up to
    /// `grace`, then aborts what is left (counted as pending at exit).
    pub async fn shutdown(mut self, grace: Duration) -> AgentStats {
        self.shared.stopping.send_replace(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("agents still uploading after {grace:?}: aborting them");
            self.shared.abort.send_replace(true);
            while self.tasks.join_next().await.is_some() {}
        }
        self.stats()
    }

    pub fn stats(&self) -> AgentStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let elapsed = self.shared.started.elapsed();
        AgentStats {
            agents: self.shared.opts.agents,
            devices: self.shared.opts.devices,
            elapsed_s: elapsed.as_secs_f64(),
            enrolled: get(&c.enrolled),
            jobs_claimed: get(&c.jobs_claimed),
            uploads_acked: get(&c.uploads_acked),
            uploads_duplicate: get(&c.uploads_duplicate),
            series_stored: get(&c.series_stored),
            series_stored_duplicate: get(&c.series_stored_duplicate),
            samples_acked: get(&c.samples_acked),
            samples_duplicate: get(&c.samples_duplicate),
            retries: get(&c.retries),
            fenced_dropped: get(&c.fenced_dropped),
            rejected: get(&c.rejected),
            pending_at_exit: get(&c.pending),
            errors: c.errors(),
            device_ids: self.device_ids(),
            endpoints: self.shared.recorder.summary(elapsed),
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn touch(&self) {
        self.counters
            .last_activity_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    /// One request, timed and counted; `None` status on a transport error. Interrupted (and
    /// then answered as a transport error) when `until` is set.
    async fn call(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
        expected: &[u16],
        until: &watch::Sender<bool>,
    ) -> Reply {
        let mut cancel = until.subscribe();
        let t = Instant::now();
        let work = async {
            let r = req.send().await?;
            let status = r.status().as_u16();
            let body = r.bytes().await?;
            Ok::<_, reqwest::Error>((status, body.to_vec()))
        };
        let got = tokio::select! {
            r = work => Some(r),
            _ = cancel.wait_for(|v| *v) => None,
        };
        let took = t.elapsed();
        match got {
            Some(Ok((status, body))) => {
                let outcome = Outcome::from_status(status, expected);
                self.recorder.record(endpoint, took, outcome);
                if !matches!(outcome, Outcome::Ok) {
                    self.counters.error(format!("{endpoint}:http_{status}"));
                }
                Reply {
                    status: Some(status),
                    body,
                }
            }
            Some(Err(e)) => {
                self.recorder.record(endpoint, took, Outcome::Transport);
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                self.counters.error(format!("{endpoint}:{kind}"));
                Reply {
                    status: None,
                    body: Vec::new(),
                }
            }
            None => Reply {
                status: None,
                body: Vec::new(),
            },
        }
    }

    /// Sleeps, waking early when `until` is set; false when it was.
    async fn pause(&self, d: Duration, until: &watch::Sender<bool>) -> bool {
        let mut rx = until.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = rx.wait_for(|v| *v) => false,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.opts.server)
    }

    fn retryable(status: Option<u16>) -> bool {
        match status {
            None => true,
            Some(s) => s == 429 || s >= 500,
        }
    }

    async fn enroll(&self, i: usize) -> Result<EnrollResponse, Stop> {
        let device = i % self.opts.devices;
        let body = EnrollRequest {
            token: self.opts.enrollment_token.clone(),
            name: Some(format!("{}-{device}", self.opts.fingerprint_prefix)),
            fingerprint: fingerprint(&self.opts.fingerprint_prefix, device),
            frameworks: frameworks(),
        };
        let mut backoff = Backoff(0);
        loop {
            if self.stopping() {
                return Err(Stop::Asked);
            }
            let req = self
                .client
                .post(self.url("/v1/agents/enroll"))
                .timeout(Duration::from_secs(30))
                .json(&body);
            let r = self.call("enroll", req, &[], &self.stopping).await;
            match r.status {
                Some(201) | Some(200) => match serde_json::from_slice::<EnrollResponse>(&r.body) {
                    Ok(e) => return Ok(e),
                    Err(e) => {
                        self.counters.error("enroll:bad_body".into());
                        tracing::warn!("enroll answer: {e}");
                    }
                },
                None => {}
                Some(s) if Self::retryable(Some(s)) => {}
                Some(s) => {
                    tracing::error!(
                        "agent {i}: enrollment refused ({s}): {}",
                        String::from_utf8_lossy(&r.body)
                    );
                    return Err(Stop::Refused);
                }
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if !self.pause(backoff.next(), &self.stopping).await {
                return Err(Stop::Asked);
            }
        }
    }

    async fn agent(self: Arc<Self>, i: usize) {
        let enrolled = match self.enroll(i).await {
            Ok(e) => e,
            Err(_) => return,
        };
        self.counters.enrolled.fetch_add(1, Ordering::Relaxed);
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(enrolled.device_id.clone());
        let token = enrolled.token;
        let cadence = enrolled.cadence;
        let heartbeat = {
            let s = self.clone();
            let token = token.clone();
            tokio::spawn(async move { s.heartbeats(&token, cadence.heartbeat_s).await })
        };
        let out = self
            .jobs(&token, &enrolled.device_id, cadence.poll_wait_s)
            .await;
        heartbeat.abort();
        if let Err(Stop::Refused) = out {
            tracing::error!("agent {i} stopped: its credentials were refused");
        }
    }

    async fn heartbeats(&self, token: &str, every_s: f64) {
        let body = HeartbeatRequest {
            agent_version: Some(AGENT_VERSION.into()),
            state: None,
            frameworks: frameworks(),
        };
        loop {
            let jitter = rand::rng().random_range(0.8..1.2);
            if !self
                .pause(Duration::from_secs_f64(every_s * jitter), &self.stopping)
                .await
            {
                return;
            }
            let req = self
                .client
                .post(self.url("/v1/agents/heartbeat"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(30))
                .json(&body);
            let r = self.call("heartbeat", req, &[], &self.stopping).await;
            if matches!(r.status, Some(401 | 403)) {
                return;
            }
        }
    }

    async fn jobs(&self, token: &str, device: &str, poll_wait_s: f64) -> Result<(), Stop> {
        let wait_s = self
            .opts
            .claim_wait_s
            .unwrap_or(poll_wait_s)
            .min(poll_wait_s);
        let mut backoff = Backoff(0);
        loop {
            if self.stopping() {
                return Err(Stop::Asked);
            }
            let req = self
                .client
                .post(self.url("/v1/agents/jobs/claim"))
                .bearer_auth(token)
                .timeout(Duration::from_secs_f64(wait_s + 30.0))
                .json(&ClaimRequest {
                    wait_s: Some(wait_s),
                });
            // A long poll is abandoned when the fleet stops claiming; a job the server leased
            // meanwhile goes back to the queue when its lease runs out.
            let r = self.call("claim", req, &[], &self.stopping).await;
            match r.status {
                Some(200) => {
                    let job: Job = match serde_json::from_slice(&r.body) {
                        Ok(j) => j,
                        Err(e) => {
                            tracing::warn!("claim answer: {e}");
                            self.counters.error("claim:bad_body".into());
                            continue;
                        }
                    };
                    backoff = Backoff(0);
                    self.counters.jobs_claimed.fetch_add(1, Ordering::Relaxed);
                    self.counters.busy.fetch_add(1, Ordering::SeqCst);
                    self.touch();
                    let out = self.work(token, device, &job).await;
                    self.counters.busy.fetch_sub(1, Ordering::SeqCst);
                    out?;
                }
                Some(204) => backoff = Backoff(0),
                Some(401 | 403) => return Err(Stop::Refused),
                _ if self.stopping() => return Err(Stop::Asked),
                _ => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    if !self.pause(backoff.next(), &self.stopping).await {
                        return Err(Stop::Asked);
                    }
                }
            }
        }
    }

    /// Renews a lease once; false when the job was fenced out (drop it).
    async fn renew(&self, token: &str, job: &Job) -> Result<bool, Stop> {
        let req = self
            .client
            .post(self.url(&format!("/v1/agents/jobs/{}/lease", job.id)))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .json(&LeaseRef {
                attempt: job.attempt,
                lease_id: job.lease_id.clone(),
                reason: None,
            });
        let r = self.call("renew", req, &FENCED, &self.abort).await;
        match r.status {
            Some(401 | 403) => Err(Stop::Refused),
            Some(s) if FENCED.contains(&s) => Ok(false),
            // A failed renewal is not fatal: the lease still runs; the next one may pass.
            _ => Ok(true),
        }
    }

    /// Measures a job (sleeps, renewing the lease) and uploads it until acknowledged.
    async fn work(&self, token: &str, device: &str, job: &Job) -> Result<(), Stop> {
        let work =
            Duration::from_millis(self.opts.work_ms).mul_f64(rand::rng().random_range(0.5..=1.5));
        // Renew at the middle of the work, and every third of a lease after that.
        let every = Duration::from_secs_f64((job.lease_s / 3.0).max(0.5));
        let mut left = work;
        let mut step = work / 2;
        loop {
            tokio::time::sleep(step.min(left)).await;
            left = left.saturating_sub(step);
            if left.is_zero() {
                break;
            }
            if !self.renew(token, job).await? {
                self.counters.fenced_dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            step = every;
        }
        let results: Vec<BlockMeasurement> = job
            .items
            .iter()
            .map(|k| measurement(job, k, self.opts.samples))
            .collect();
        let samples: u64 = results.iter().map(|r| r.samples.len() as u64).sum();
        let upload = ResultUpload {
            attempt: job.attempt,
            lease_id: job.lease_id.clone(),
            agent_version: AGENT_VERSION.into(),
            timestamps_valid: Some(true),
            results,
        };
        self.counters.pending.fetch_add(1, Ordering::SeqCst);
        self.upload(token, device, job, &upload, samples).await
    }

    async fn upload(
        &self,
        token: &str,
        device: &str,
        job: &Job,
        upload: &ResultUpload,
        samples: u64,
    ) -> Result<(), Stop> {
        let c = &self.counters;
        let mut backoff = Backoff(0);
        loop {
            let req = self
                .client
                .post(self.url(&format!("/v1/agents/jobs/{}/result", job.id)))
                .bearer_auth(token)
                .timeout(Duration::from_secs(60))
                .json(upload);
            let r = self.call("result", req, &FENCED, &self.abort).await;
            match r.status {
                Some(200) => match serde_json::from_slice::<ResultAck>(&r.body) {
                    Ok(ack) => {
                        if ack.duplicate {
                            c.uploads_duplicate.fetch_add(1, Ordering::Relaxed);
                            c.series_stored_duplicate
                                .fetch_add(ack.stored as u64, Ordering::Relaxed);
                            c.samples_duplicate.fetch_add(samples, Ordering::Relaxed);
                        } else {
                            c.uploads_acked.fetch_add(1, Ordering::Relaxed);
                            c.series_stored
                                .fetch_add(ack.stored as u64, Ordering::Relaxed);
                            c.samples_acked.fetch_add(samples, Ordering::Relaxed);
                        }
                        c.pending.fetch_sub(1, Ordering::SeqCst);
                        self.touch();
                        self.measured
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(device.to_string());
                        return Ok(());
                    }
                    Err(e) => {
                        // Stored or not, a retry tells: a stored upload is acknowledged again
                        // as a duplicate.
                        tracing::warn!("result answer: {e}");
                        c.error("result:bad_body".into());
                    }
                },
                Some(s) if FENCED.contains(&s) => {
                    c.fenced_dropped.fetch_add(1, Ordering::Relaxed);
                    c.pending.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
                Some(401 | 403) => return Err(Stop::Refused),
                None => {}
                Some(s) if Self::retryable(Some(s)) => {}
                Some(s) => {
                    tracing::error!(
                        "upload of job {} refused ({s}): {}",
                        job.id,
                        String::from_utf8_lossy(&r.body)
                    );
                    c.rejected.fetch_add(1, Ordering::Relaxed);
                    c.pending.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
            }
            c.retries.fetch_add(1, Ordering::Relaxed);
            if !self.pause(backoff.next(), &self.abort).await {
                return Err(Stop::Asked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_samples_are_deterministic_positive_and_per_key() {
        let a = synthetic_samples("gap-i7x7x960", 30);
        assert_eq!(a, synthetic_samples("gap-i7x7x960", 30));
        assert_eq!(a.len(), 30);
        assert!(a.iter().all(|s| s.is_finite() && *s > 0.0 && *s < 10.0));
        assert_ne!(a[0], synthetic_samples("gap-i7x7x961", 30)[0]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff(0);
        let first = b.next();
        assert!(first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next() <= BACKOFF_CAP);
        }
    }
}
