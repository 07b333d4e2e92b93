//! How `bench` shows its results: a table for people, CSV for spreadsheets; JSON is the
//! [`BenchReport`] itself.

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use gpulut_tables::Summary;
use gpulut_tables::wire::{BenchReport, BlockMeasurement};

/// The figures of one result's row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    pub median_ms: f64,
    pub min_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    /// Standard deviation over mean of the samples.
    pub cv: f64,
    pub runs: usize,
    pub gflops: f64,
    pub gbytes_per_s: f64,
}

impl RowStats {
    /// None when the result has no samples (failed, or not timed).
    pub fn of(m: &BlockMeasurement) -> Option<Self> {
        let s = Summary::from_samples(&m.samples).ok()?;
        let n = m.samples.len() as f64;
        let var = m.samples.iter().map(|x| (x - s.mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let per_s = |amount: u64| {
            if s.median > 0.0 {
                amount as f64 / (s.median * 1e-3) / 1e9
            } else {
                0.0
            }
        };
        Some(Self {
            median_ms: s.median,
            min_ms: s.min,
            p10_ms: s.p10,
            p90_ms: s.p90,
            cv: if s.mean > 0.0 {
                var.sqrt() / s.mean
            } else {
                0.0
            },
            runs: m.samples.len(),
            gflops: per_s(m.flops),
            gbytes_per_s: per_s(m.bytes),
        })
    }
}

/// `MoGA-A (453969358533aa)` for named architectures, the key otherwise.
pub fn display_key(m: &BlockMeasurement) -> String {
    match &m.name {
        Some(name) => format!("{name} ({})", m.key),
        None => m.key.clone(),
    }
}

fn verification(m: &BlockMeasurement) -> String {
    match (m.verified, m.max_relative_error) {
        (true, Some(e)) => format!("ok {e:.0e}"),
        (true, None) => "ok".to_owned(),
        (false, Some(e)) => format!("FAILED {e:.1e}"),
        (false, None) => "FAILED".to_owned(),
    }
}

pub fn render_table(report: &BenchReport) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "block / architecture",
            "framework",
            "median ms",
            "p10 ms",
            "p90 ms",
            "CV %",
            "runs",
            "timer",
            "GFLOP/s",
            "GB/s",
            "verified",
        ]);
    for m in &report.results {
        let framework = format!("{}@{}", m.framework, m.framework_version);
        let mut row = vec![display_key(m), framework];
        match RowStats::of(m) {
            Some(r) => row.extend([
                format!("{:.3}", r.median_ms),
                format!("{:.3}", r.p10_ms),
                format!("{:.3}", r.p90_ms),
                format!("{:.1}", r.cv * 100.0),
                r.runs.to_string(),
                m.timer.map_or("-", |t| t.as_str()).to_owned(),
                format!("{:.2}", r.gflops),
                format!("{:.2}", r.gbytes_per_s),
            ]),
            None => row.extend(std::iter::repeat_n("-".to_owned(), 8)),
        }
        row.push(verification(m));
        t.add_row(row);
    }
    // Numbers right-aligned; the timer (column 7) is a word.
    for col in (2..7).chain(8..10) {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = t.to_string();
    let failed: Vec<&BlockMeasurement> = report
        .results
        .iter()
        .filter(|m| m.error.is_some())
        .collect();
    for m in failed {
        out.push_str(&format!(
            "\n{} on {}: {}",
            display_key(m),
            m.framework,
            m.error.as_deref().unwrap_or("")
        ));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One header line, then one line per result.
pub fn render_csv(report: &BenchReport) -> String {
    let mut out = String::from(
        "key,name,kind,framework,framework_version,verified,max_relative_error,median_ms,min_ms,p10_ms,p90_ms,cv,runs,timer,gflops,gbytes_per_s,flops,bytes,dispatches,pipeline_ms,stopped_by,error\n",
    );
    for m in &report.results {
        let r = RowStats::of(m);
        let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        let fields = [
            csv_field(&m.key),
            csv_field(m.name.as_deref().unwrap_or("")),
            format!("{:?}", m.kind).to_lowercase(),
            csv_field(&m.framework),
            csv_field(&m.framework_version),
            m.verified.to_string(),
            num(m.max_relative_error),
            num(r.map(|r| r.median_ms)),
            num(r.map(|r| r.min_ms)),
            num(r.map(|r| r.p10_ms)),
            num(r.map(|r| r.p90_ms)),
            num(r.map(|r| r.cv)),
            r.map_or(String::new(), |r| r.runs.to_string()),
            m.timer.map_or("", |t| t.as_str()).to_owned(),
            num(r.map(|r| r.gflops)),
            num(r.map(|r| r.gbytes_per_s)),
            m.flops.to_string(),
            m.bytes.to_string(),
            m.dispatches.to_string(),
            format!("{}", m.pipeline_ms),
            m.stopped_by
                .map_or(String::new(), |s| format!("{s:?}").to_lowercase()),
            csv_field(m.error.as_deref().unwrap_or("")),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use gpulut_tables::wire::{
        DeviceFingerprint, GpuFingerprint, MeasuredKind, StopReason, TimerKind,
    };

    use super::*;
    use crate::bench::default_protocol;

    fn measurement(samples: Vec<f64>, verified: bool) -> BlockMeasurement {
        BlockMeasurement {
            key: "453969358533aa".into(),
            kind: MeasuredKind::Arch,
            name: Some("MoGA-A".into()),
            framework: "wgpu-fused".into(),
            framework_version: "1".into(),
            verified,
            max_relative_error: Some(if verified { 2e-7 } else { 0.5 }),
            tolerance: 1e-4,
            error: (!verified).then(|| "output differs, with \"quotes\", commas".into()),
            median_ms: None,
            samples,
            timer: verified.then_some(TimerKind::GpuTimestamp),
            wall_samples: vec![],
            warmup_runs: 10,
            stopped_by: verified.then_some(StopReason::Converged),
            pipeline_ms: 12.5,
            dispatches: 50,
            flops: 2_000_000_000,
            bytes: 100_000_000,
            state_start: None,
            state_end: None,
        }
    }

    fn report(results: Vec<BlockMeasurement>) -> BenchReport {
        BenchReport {
            agent_version: "0.1.0".into(),
            fingerprint: DeviceFingerprint {
                model: None,
                manufacturer: None,
                soc: None,
                hardware_id: None,
                os: "linux".into(),
                os_version: None,
                android_api_level: None,
                gpu: GpuFingerprint {
                    name: "llvmpipe".into(),
                    vendor_id: 0x10005,
                    device_id: 0,
                    device_type: "cpu".into(),
                    backend: "vulkan".into(),
                    driver: "llvmpipe".into(),
                    driver_version: "Mesa".into(),
                    api_version: None,
                    timestamp_query: true,
                    timestamp_period_ns: Some(1.0),
                },
                agent_version: "0.1.0".into(),
            },
            space: "moga-mbv3".into(),
            protocol: default_protocol(),
            timestamps_valid: Some(true),
            results,
        }
    }

    #[test]
    fn stats_give_throughput_at_the_median() {
        let m = measurement(vec![9.0, 10.0, 11.0], true);
        let r = RowStats::of(&m).unwrap();
        assert_eq!(r.median_ms, 10.0);
        // 2 GFLOP in 10 ms
        assert!((r.gflops - 200.0).abs() < 1e-9);
        assert!((r.gbytes_per_s - 10.0).abs() < 1e-9);
        assert!((r.cv - 0.1).abs() < 1e-9);
        assert!(RowStats::of(&measurement(vec![], false)).is_none());
    }

    #[test]
    fn table_and_csv_show_successes_and_failures() {
        let rep = report(vec![
            measurement(vec![9.0, 10.0, 11.0], true),
            measurement(vec![], false),
        ]);
        let table = render_table(&rep);
        for needle in [
            "MoGA-A (453969358533aa)",
            "wgpu-fused@1",
            "10.000",
            "gpu-timestamp",
            "200.00",
            "FAILED",
        ] {
            assert!(table.contains(needle), "{needle} missing in\n{table}");
        }
        let csv = render_csv(&rep);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns = lines[0].split(',').count();
        assert!(lines[1].starts_with("453969358533aa,MoGA-A,arch,wgpu-fused,1,true,"));
        assert_eq!(lines[1].split(',').count(), columns);
        assert!(lines[2].ends_with("\"output differs, with \"\"quotes\"\", commas\""));
    }
}
