//! Request figures per endpoint: every duration is kept and sorted at the end, so the
//! percentiles are exact (a load of a few minutes holds well under a few million requests).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// The endpoints a load exercises, in report order.
pub const ENDPOINTS: [&str; 7] = [
    "enroll",
    "heartbeat",
    "claim",
    "renew",
    "result",
    "table_get",
    "predict",
];

/// Outcome of one request, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// A non-2xx answer that the protocol expects and the client handles without loss
    /// (a fenced lease: 404, 409, 410).
    Expected(u16),
    /// Any other status: an error.
    Status(u16),
    /// No HTTP answer at all (connection refused or reset, timeout).
    Transport,
}

impl Outcome {
    pub fn from_status(status: u16, expected: &[u16]) -> Self {
        if (200..300).contains(&status) {
            Self::Ok
        } else if expected.contains(&status) {
            Self::Expected(status)
        } else {
            Self::Status(status)
        }
    }
}

#[derive(Debug, Default)]
struct Series {
    durations_ms: Vec<f64>,
    ok: u64,
    expected: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

/// Thread-safe collector shared by every simulated client of one process.
#[derive(Debug, Default)]
pub struct Recorder {
    series: Mutex<BTreeMap<&'static str, Series>>,
}

impl Recorder {
    pub fn record(&self, endpoint: &'static str, took: Duration, outcome: Outcome) {
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = all.entry(endpoint).or_default();
        s.durations_ms.push(took.as_secs_f64() * 1e3);
        match outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Expected(code) => *s.expected.entry(format!("http_{code}")).or_default() += 1,
            Outcome::Status(code) => *s.errors.entry(format!("http_{code}")).or_default() += 1,
            Outcome::Transport => *s.errors.entry("transport".into()).or_default() += 1,
        }
    }

    /// The figures per endpoint over a run of `elapsed`; endpoints never called are left out.
    pub fn summary(&self, elapsed: Duration) -> Vec<EndpointFigures> {
        let all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&'static str> = ENDPOINTS
            .iter()
            .copied()
            .filter(|e| all.contains_key(e))
            .collect();
        names.extend(all.keys().copied().filter(|k| !ENDPOINTS.contains(k)));
        names
            .into_iter()
            .map(|name| {
                let s = &all[name];
                let mut sorted = s.durations_ms.clone();
                sorted.sort_by(f64::total_cmp);
                let requests = sorted.len() as u64;
                EndpointFigures {
                    endpoint: name.to_string(),
                    requests,
                    ok: s.ok,
                    per_s: requests as f64 / elapsed.as_secs_f64().max(1e-9),
                    p50_ms: percentile(&sorted, 0.50),
                    p99_ms: percentile(&sorted, 0.99),
                    max_ms: sorted.last().copied().unwrap_or(0.0),
                    expected: s.expected.clone(),
                    errors: s.errors.clone(),
                }
            })
            .collect()
    }
}

/// One endpoint's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointFigures {
    pub endpoint: String,
    pub requests: u64,
    pub ok: u64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Non-2xx answers the protocol expects (fenced leases), by kind.
    pub expected: BTreeMap<String, u64>,
    /// Everything else that was not a 2xx, by kind.
    pub errors: BTreeMap<String, u64>,
}

impl EndpointFigures {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Nearest-rank percentile of sorted values (the smallest value with at least `q` of the
/// values at or below it): always one of the observed durations, never an interpolation
/// between a fast and a slow request. 0 for no values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        // 3 values: the median is the middle one, p99 the largest.
        assert_eq!(percentile(&[1.0, 2.0, 10.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 10.0], 0.99), 10.0);
    }

    #[test]
    fn recorder_counts_outcomes_per_endpoint_in_report_order() {
        let r = Recorder::default();
        let ms = Duration::from_millis;
        r.record("result", ms(30), Outcome::Ok);
        r.record("result", ms(10), Outcome::Ok);
        r.record(
            "result",
            ms(20),
            Outcome::from_status(409, &[404, 409, 410]),
        );
        r.record("claim", ms(5), Outcome::from_status(503, &[]));
        r.record("claim", ms(1), Outcome::Transport);
        let s = r.summary(Duration::from_secs(2));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].endpoint, "claim");
        assert_eq!(s[0].error_count(), 2);
        assert_eq!(s[0].errors["http_503"], 1);
        assert_eq!(s[0].errors["transport"], 1);
        let res = &s[1];
        assert_eq!((res.requests, res.ok, res.error_count()), (3, 2, 0));
        assert_eq!(res.expected["http_409"], 1);
        assert_eq!(res.per_s, 1.5);
        assert_eq!((res.p50_ms, res.p99_ms, res.max_ms), (20.0, 30.0, 30.0));
    }
}
