//! The load run's report: `load.json` (everything) and `load.md` (a section for the proof
//! document: the figures per endpoint, the count check and the verdict).

use std::fmt::Write as _;

use serde::Serialize;

use crate::agent::AgentStats;
use crate::stats::EndpointFigures;

/// What the database holds for the load's campaigns, next to what the server acknowledged.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountCheck {
    /// Series acknowledged by the server: `ResultAck.stored` summed over the first
    /// acknowledgement of every (job, attempt) (duplicates included: each is the answer to a
    /// retry of an upload whose first answer was lost).
    pub acked_series: u64,
    pub acked_samples: u64,
    /// Jobs acknowledged (each (job, attempt) once).
    pub acked_jobs: u64,
    pub db_series: u64,
    pub db_samples: u64,
    /// Jobs of the load's campaigns in state `done`.
    pub db_done_jobs: u64,
}

impl CountCheck {
    pub fn matches(&self) -> bool {
        self.acked_series == self.db_series
            && self.acked_samples == self.db_samples
            && self.acked_jobs == self.db_done_jobs
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub agents: usize,
    pub devices: usize,
    pub query_clients: usize,
    pub seconds: f64,
    pub campaigns: usize,
    pub endpoints: Vec<EndpointFigures>,
    pub agent_stats: AgentStats,
    pub counts: CountCheck,
    pub errors: u64,
    pub passed: bool,
    /// Where the figures come from, in words (same machine, cores).
    pub setting: String,
}

impl LoadReport {
    pub fn errors_of(endpoints: &[EndpointFigures], stats: &AgentStats) -> u64 {
        endpoints
            .iter()
            .map(EndpointFigures::error_count)
            .sum::<u64>()
            + stats.rejected
            + stats.pending_at_exit
    }
}

fn kinds(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "0".into();
    }
    let total: u64 = map.values().sum();
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// The markdown table of endpoint figures.
pub fn endpoint_table(endpoints: &[EndpointFigures]) -> String {
    let mut s = String::from(
        "| endpoint | requests | req/s | p50 ms | p99 ms | max ms | errors | expected non-2xx |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for e in endpoints {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            e.endpoint,
            e.requests,
            e.per_s,
            e.p50_ms,
            e.p99_ms,
            e.max_ms,
            kinds(&e.errors),
            kinds(&e.expected),
        );
    }
    s
}

pub fn markdown(r: &LoadReport) -> String {
    let c = &r.counts;
    let a = &r.agent_stats;
    let mut s = format!("## Load: {} simulated agents\n\n", r.agents);
    let _ = writeln!(
        s,
        "{} simulated agents on {} devices and {} query clients for {:.0} s against one server; {}.\n",
        r.agents, r.devices, r.query_clients, r.seconds, r.setting
    );
    s.push_str(&endpoint_table(&r.endpoints));
    let _ = writeln!(
        s,
        "\nClaims are long polls: their latency includes the wait for a job.\n\n\
         Agents: {} enrolled, {} jobs claimed, {} uploads acknowledged ({} as duplicates), \
         {} retries, {} jobs dropped as fenced, {} uploads refused, {} results pending at exit.\n",
        a.enrolled,
        a.jobs_claimed,
        a.uploads_acked,
        a.uploads_duplicate,
        a.retries,
        a.fenced_dropped,
        a.rejected,
        a.pending_at_exit
    );
    let mark = |ok: bool| if ok { "yes" } else { "**NO**" };
    let _ = writeln!(
        s,
        "| count check | acknowledged | in the database | equal |\n|---|---:|---:|---|\n\
         | series | {} | {} | {} |\n| samples | {} | {} | {} |\n| jobs done | {} | {} | {} |\n",
        c.acked_series,
        c.db_series,
        mark(c.acked_series == c.db_series),
        c.acked_samples,
        c.db_samples,
        mark(c.acked_samples == c.db_samples),
        c.acked_jobs,
        c.db_done_jobs,
        mark(c.acked_jobs == c.db_done_jobs),
    );
    let _ = writeln!(
        s,
        "Verdict: **{}** ({} errors; counts {}).",
        if r.passed { "PASS" } else { "FAIL" },
        r.errors,
        if c.matches() { "equal" } else { "differ" }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fig(name: &str, errors: &[(&str, u64)]) -> EndpointFigures {
        EndpointFigures {
            endpoint: name.into(),
            requests: 120,
            ok: 120 - errors.iter().map(|e| e.1).sum::<u64>(),
            per_s: 2.0,
            p50_ms: 1.5,
            p99_ms: 9.0,
            max_ms: 30.5,
            expected: BTreeMap::new(),
            errors: errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn endpoint_table_has_a_row_per_endpoint_with_error_kinds() {
        let t = endpoint_table(&[
            fig("claim", &[]),
            fig("result", &[("http_503", 2), ("transport", 1)]),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert_eq!(
            lines[0],
            "| endpoint | requests | req/s | p50 ms | p99 ms | max ms | errors | expected non-2xx |"
        );
        assert_eq!(lines[2], "| claim | 120 | 2.0 | 1.5 | 9.0 | 30.5 | 0 | 0 |");
        assert_eq!(
            lines[3],
            "| result | 120 | 2.0 | 1.5 | 9.0 | 30.5 | 3 (http_503: 2, transport: 1) | 0 |"
        );
    }

    #[test]
    fn count_check_compares_all_three_counts() {
        let mut c = CountCheck {
            acked_series: 10,
            acked_samples: 300,
            acked_jobs: 2,
            db_series: 10,
            db_samples: 300,
            db_done_jobs: 2,
        };
        assert!(c.matches());
        c.db_done_jobs = 3;
        assert!(!c.matches());
    }
}
