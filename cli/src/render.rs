//! Text renderings of the server's answers. Pure functions of the data, so fixed fixtures
//! snapshot them; the terminal width is the only outside input, and it is passed in.

use std::collections::HashMap;
use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde_json::Value;

use crate::api::{
    Agent, Analysis, Campaign, Device, EnrollmentToken, Front, Prediction, SearchStatus,
    TableSummary,
};

/// How tables are laid out: wrapped to the terminal's width when there is one, never wrapped
/// into a pipe (scripts and snapshots see whole lines).
#[derive(Debug, Clone, Copy, Default)]
pub struct Renderer {
    pub width: Option<u16>,
}

impl Renderer {
    fn grid(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        match self.width {
            Some(w) => {
                t.set_content_arrangement(ContentArrangement::Dynamic);
                t.set_width(w);
            }
            None => {
                t.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        // An empty header makes a key-value listing: no header row at all.
        if !header.is_empty() {
            t.set_header(header.to_vec());
        }
        t
    }

    pub fn token_created(&self, t: &EnrollmentToken, server: &str) -> String {
        let secret = t.token.as_deref().unwrap_or("<not returned>");
        let mut out = String::new();
        let _ = writeln!(out, "Enrollment token {} ({})", t.id, t.label);
        let _ = writeln!(out, "  token:   {secret}   (shown once: keep it now)");
        let _ = writeln!(
            out,
            "  uses:    {} of {}, expires {}",
            t.uses,
            t.max_uses,
            timestamp(&t.expires_at)
        );
        if !t.device_labels.is_empty() {
            let _ = writeln!(out, "  labels:  {}", t.device_labels.join(", "));
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "On the device (a phone: `adb shell`, in /data/local/tmp):"
        );
        let _ = writeln!(
            out,
            "  gpulut-agent enroll --server {server} --token {secret}"
        );
        let _ = writeln!(out, "  gpulut-agent run");
        if is_loopback(server) {
            let _ = writeln!(
                out,
                "\nA phone reaches this machine's {server} after `adb reverse tcp:{port} tcp:{port}`.",
                port = port_of(server)
            );
        }
        out
    }

    pub fn tokens(&self, tokens: &[EnrollmentToken]) -> String {
        let mut t = self.grid(&["id", "label", "prefix", "uses", "expires", "state"]);
        for k in tokens {
            let state = if k.revoked_at.is_some() {
                "revoked"
            } else if k.uses >= k.max_uses {
                "used up"
            } else {
                "active"
            };
            t.add_row(vec![
                Cell::new(&k.id),
                Cell::new(&k.label),
                Cell::new(&k.prefix),
                Cell::new(format!("{}/{}", k.uses, k.max_uses)).set_alignment(CellAlignment::Right),
                Cell::new(timestamp(&k.expires_at)),
                Cell::new(state),
            ]);
        }
        with_empty_note(t, tokens.is_empty(), "no enrollment tokens")
    }

    pub fn devices(&self, devices: &[Device]) -> String {
        let mut t = self.grid(&["id", "name", "status", "gpu", "agents", "last seen"]);
        for d in devices {
            t.add_row(vec![
                Cell::new(&d.id),
                Cell::new(&d.name),
                Cell::new(&d.status),
                Cell::new(gpu_name(&d.fingerprint)),
                Cell::new(d.agents).set_alignment(CellAlignment::Right),
                Cell::new(d.last_seen_at.as_deref().map_or("never".into(), timestamp)),
            ]);
        }
        with_empty_note(
            t,
            devices.is_empty(),
            "no devices yet: enroll an agent (gpulut tokens create)",
        )
    }

    /// One device; `agents` is None when the caller may not list agents (not an admin).
    pub fn device(&self, d: &Device, agents: Option<&[Agent]>) -> String {
        let mut t = self.grid(&[]);
        let mut row = |k: &str, v: String| {
            t.add_row(vec![Cell::new(k), Cell::new(v)]);
        };
        row("id", d.id.clone());
        row("name", d.name.clone());
        row("status", d.status.clone());
        if !d.labels.is_empty() {
            row("labels", d.labels.join(", "));
        }
        row(
            "last seen",
            d.last_seen_at.as_deref().map_or("never".into(), timestamp),
        );
        row("created", timestamp(&d.created_at));
        row("agents", d.agents.to_string());
        let mut flat = Vec::new();
        flatten("", &d.fingerprint, &mut flat);
        for (k, v) in flat {
            row(&format!("fingerprint.{k}"), v);
        }
        let mut out = format!("{t}\n");
        if let Some(agents) = agents {
            let mut a = self.grid(&["agent", "name", "version", "last heartbeat", "state"]);
            for ag in agents.iter().filter(|a| a.device_id == d.id) {
                a.add_row(vec![
                    Cell::new(&ag.id),
                    Cell::new(&ag.name),
                    Cell::new(&ag.agent_version),
                    Cell::new(
                        ag.last_heartbeat_at
                            .as_deref()
                            .map_or("never".into(), timestamp),
                    ),
                    Cell::new(if ag.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "enrolled"
                    }),
                ]);
            }
            if a.row_count() > 0 {
                let _ = writeln!(out, "{a}");
            }
        }
        out
    }

    pub fn table_list(&self, tables: &[TableSummary]) -> String {
        let mut t = self.grid(&[
            "device",
            "device id",
            "framework",
            "space",
            "entries",
            "coverage",
            "stale",
            "within ±10%",
            "last measured",
        ]);
        for s in tables {
            let v = &s.validation;
            let within = v["within_10pct"].as_f64().map_or("-".into(), |x| {
                format!("{:.0}% of {}", x * 100.0, v["networks"])
            });
            t.add_row(vec![
                Cell::new(&s.device_name),
                Cell::new(&s.device),
                Cell::new(&s.framework),
                Cell::new(&s.space),
                Cell::new(format!("{}/{}", s.entries, s.blocks))
                    .set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.0}%", s.coverage * 100.0))
                    .set_alignment(CellAlignment::Right),
                Cell::new(s.stale).set_alignment(CellAlignment::Right),
                Cell::new(within),
                Cell::new(s.last_measured_at.as_deref().map_or("-".into(), timestamp)),
            ]);
        }
        with_empty_note(
            t,
            tables.is_empty(),
            "no latency tables yet: run a campaign (gpulut campaigns create)",
        )
    }

    pub fn table(&self, table: &crate::api::Table) -> String {
        let mut t = self.grid(&[
            "key",
            "part",
            "median ms",
            "95% CI ms",
            "p10 ms",
            "p90 ms",
            "MAD ms",
            "samples",
            "stale",
        ]);
        for e in &table.entries {
            let ci = match (e.ci_low_ms, e.ci_high_ms) {
                (Some(lo), Some(hi)) => format!("{} – {}", ms(lo), ms(hi)),
                _ => "-".into(),
            };
            t.add_row(vec![
                Cell::new(&e.key),
                Cell::new(&e.part),
                num(ms(e.median_ms)),
                num(ci),
                num(ms(e.p10_ms)),
                num(ms(e.p90_ms)),
                num(ms(e.mad_ms)),
                num(e.count.to_string()),
                Cell::new(if e.stale { "stale" } else { "" }),
            ]);
        }
        let mut out = format!(
            "{} ({}) / {} / {}: {} entries, {} missing\n{t}\n",
            table.device_name,
            table.device,
            table.framework,
            table.space,
            table.entries.len(),
            table.missing.len()
        );
        if !table.missing.is_empty() {
            let shown: Vec<&str> = table.missing.iter().take(8).map(String::as_str).collect();
            let more = table.missing.len().saturating_sub(shown.len());
            let _ = write!(out, "missing: {}", shown.join(", "));
            if more > 0 {
                let _ = write!(out, " and {more} more");
            }
            out.push('\n');
        }
        out
    }

    /// Predictions with params and MACs from the space's analysis of the same architectures.
    pub fn predictions(&self, preds: &[Prediction], analysis: &[Analysis]) -> String {
        let by_arch: HashMap<&str, &Analysis> =
            analysis.iter().map(|a| (a.arch.as_str(), a)).collect();
        let calibrated = preds.iter().any(|p| p.calibrated_ms.is_some());
        let mut header = vec!["arch", "name", "total ms", "± ms"];
        if calibrated {
            header.push("calibrated ms");
        }
        header.extend(["params (M)", "MACs (M)", "missing"]);
        let mut t = self.grid(&header);
        for (i, p) in preds.iter().enumerate() {
            // The analysis answers in request order; the arch check guards against a server
            // that does not.
            let a = analysis
                .get(i)
                .filter(|a| a.arch == p.arch)
                .or_else(|| by_arch.get(p.arch.as_str()).copied());
            let mut row = vec![
                Cell::new(&p.arch),
                Cell::new(p.name.as_deref().unwrap_or("")),
                num(p.total_ms.map_or("-".into(), ms)),
                num(p.uncertainty_ms.map_or("-".into(), ms)),
            ];
            if calibrated {
                row.push(num(p.calibrated_ms.map_or("-".into(), ms)));
            }
            row.push(num(a.map_or("-".into(), |a| millions(a.params, 2))));
            row.push(num(a.map_or("-".into(), |a| millions(a.macs, 1))));
            row.push(Cell::new(missing(&p.missing)));
            t.add_row(row);
        }
        format!("{t}\n")
    }

    pub fn campaigns(&self, campaigns: &[Campaign]) -> String {
        let mut t = self.grid(&[
            "id",
            "state",
            "space",
            "device",
            "frameworks",
            "jobs done",
            "items done",
            "created",
        ]);
        for c in campaigns {
            let p = &c.progress;
            t.add_row(vec![
                Cell::new(&c.id),
                Cell::new(&c.state),
                Cell::new(&c.space),
                Cell::new(selector(&c.device)),
                Cell::new(c.frameworks.join(", ")),
                num(format!("{}/{}", p.done, p.jobs)),
                num(format!("{}/{}", p.items_done, p.items)),
                Cell::new(timestamp(&c.created_at)),
            ]);
        }
        with_empty_note(t, campaigns.is_empty(), "no campaigns")
    }

    pub fn campaign(&self, c: &Campaign) -> String {
        let p = &c.progress;
        let mut out = format!(
            "campaign {}: {}\n  space {}, device {}, frameworks {}\n  jobs: {} done, {} running, {} queued, {} failed, {} cancelled of {}; items {}/{}\n",
            c.id,
            c.state,
            c.space,
            selector(&c.device),
            c.frameworks.join(", "),
            p.done,
            p.leased,
            p.queued,
            p.failed,
            p.cancelled,
            p.jobs,
            p.items_done,
            p.items
        );
        if let Some(r) = &c.failure_reason {
            let _ = writeln!(out, "  failure: {r}");
        }
        out
    }

    pub fn searches(&self, searches: &[SearchStatus]) -> String {
        let mut t = self.grid(&[
            "id",
            "state",
            "space",
            "tables",
            "accuracy",
            "generation",
            "hypervolume",
            "created",
        ]);
        for s in searches {
            t.add_row(vec![
                Cell::new(&s.id),
                Cell::new(&s.state),
                Cell::new(&s.space),
                Cell::new(s.tables().join(", ")),
                Cell::new(&s.accuracy_kind),
                num(format!("{}/{}", s.generation, s.generations)),
                num(s
                    .latest_hypervolume()
                    .map_or("-".into(), |h| format!("{:.4}", h.hypervolume))),
                Cell::new(timestamp(&s.created_at)),
            ]);
        }
        with_empty_note(
            t,
            searches.is_empty(),
            "no searches yet: gpulut search start --table DEVICE/FRAMEWORK",
        )
    }

    pub fn search(&self, s: &SearchStatus) -> String {
        let mut t = self.grid(&[]);
        let mut row = |k: &str, v: String| {
            t.add_row(vec![Cell::new(k), Cell::new(v)]);
        };
        row("id", s.id.clone());
        let mut state = s.state.clone();
        if s.cancel_requested && !crate::api::is_terminal(&s.state) {
            state.push_str(" (cancel requested)");
        }
        row("state", state);
        row("space", s.space.clone());
        row("tables", s.tables().join(", "));
        row("accuracy", s.accuracy_kind.clone());
        row(
            "generation",
            format!(
                "{} of {} (population {})",
                s.generation, s.generations, s.population
            ),
        );
        row("evaluations", s.evaluations.to_string());
        if let Some(h) = s.latest_hypervolume() {
            row(
                "hypervolume",
                format!(
                    "{:.4} at generation {} (front of {})",
                    h.hypervolume, h.generation, h.front_size
                ),
            );
        }
        if let Some(e) = s.elapsed_s {
            row("elapsed", duration(e));
        }
        if let Some(e) = s.estimate_s.filter(|_| !crate::api::is_terminal(&s.state)) {
            row("estimate", duration(e));
        }
        row("created", timestamp(&s.created_at));
        if let Some(f) = &s.finished_at {
            row("finished", timestamp(f));
        }
        if let Some(r) = &s.failure_reason {
            row("failure", r.clone());
        }
        format!("{t}\n")
    }

    /// The front fastest first, with the reference networks among the rows where their latency
    /// puts them, so each reads against its neighbours.
    pub fn front(&self, f: &Front) -> String {
        let mut t = self.grid(&[
            "#",
            "arch",
            "accuracy %",
            "latency ms",
            "params (M)",
            "MACs (M)",
        ]);
        for row in front_rows(f) {
            let (rank, arch) = match &row.kind {
                RowKind::Member(i) => (i.to_string(), row.arch.to_string()),
                RowKind::Reference(name) if *name == row.arch => {
                    ("ref".to_string(), format!("▲ {name}"))
                }
                RowKind::Reference(name) => ("ref".to_string(), format!("▲ {name} ({})", row.arch)),
            };
            t.add_row(vec![
                num(rank),
                Cell::new(arch),
                num(row.accuracy.map_or("-".into(), |a| format!("{a:.2}"))),
                num(row.latency_ms.map_or("-".into(), ms)),
                num(millions(row.params, 2)),
                num(millions(row.macs, 1)),
            ]);
        }
        let mut out = format!(
            "search {} ({}): {} members at generation {}, fastest first; ▲ = reference network\n{t}\n",
            f.id,
            f.state,
            f.front.len(),
            f.generation
        );
        if f.accuracy_kind == "proxy" {
            out.push_str("accuracy is the proxy prior (`--accuracy proxy`), not measured top-1\n");
        }
        out
    }
}

/// Whether a front row is a member (with its 1-based rank) or a reference network.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKind<'a> {
    Member(usize),
    Reference(&'a str),
}

#[derive(Debug, Clone)]
pub struct FrontRow<'a> {
    pub kind: RowKind<'a>,
    pub arch: &'a str,
    pub accuracy: Option<f64>,
    pub latency_ms: Option<f64>,
    pub params: u64,
    pub macs: u64,
}

/// Members and references merged by latency (references without one last), members ranked
/// by latency; the one order of the table, the CSV and the plot's labels.
pub fn front_rows(f: &Front) -> Vec<FrontRow<'_>> {
    let mut members: Vec<_> = f.front.iter().collect();
    members.sort_by(|a, b| {
        a.latency_ms
            .total_cmp(&b.latency_ms)
            .then_with(|| a.arch.cmp(&b.arch))
    });
    let mut rows: Vec<FrontRow> = members
        .into_iter()
        .enumerate()
        .map(|(i, m)| FrontRow {
            kind: RowKind::Member(i + 1),
            arch: &m.arch,
            accuracy: Some(m.accuracy),
            latency_ms: Some(m.latency_ms),
            params: m.params,
            macs: m.macs,
        })
        .collect();
    rows.extend(f.references.iter().map(|r| FrontRow {
        kind: RowKind::Reference(&r.name),
        arch: &r.arch,
        accuracy: r.accuracy,
        latency_ms: r.latency_ms,
        params: r.params,
        macs: r.macs,
    }));
    // Stable: members keep their rank order, and a reference lands after members of equal
    // latency.
    rows.sort_by(|a, b| match (a.latency_ms, b.latency_ms) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    rows
}

/// CSV of the front rows; numbers unrounded so a spreadsheet gets what the server computed.
pub fn front_csv(f: &Front) -> String {
    let mut out = String::from("kind,name,arch,accuracy,latency_ms,params,macs\n");
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in front_rows(f) {
        let (kind, name) = match r.kind {
            RowKind::Member(_) => ("front", ""),
            RowKind::Reference(n) => ("reference", n),
        };
        let _ = writeln!(
            out,
            "{kind},{},{},{},{},{},{}",
            csv_field(name),
            csv_field(r.arch),
            opt(r.accuracy),
            opt(r.latency_ms),
            r.params,
            r.macs
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn with_empty_note(t: Table, empty: bool, note: &str) -> String {
    if empty {
        format!("{note}\n")
    } else {
        format!("{t}\n")
    }
}

fn num(s: impl ToString) -> Cell {
    Cell::new(s.to_string()).set_alignment(CellAlignment::Right)
}

/// Milliseconds with three decimals: blocks are fractions of a millisecond, whole networks tens.
pub fn ms(v: f64) -> String {
    format!("{v:.3}")
}

fn millions(v: u64, decimals: usize) -> String {
    format!("{:.*}", decimals, v as f64 / 1e6)
}

fn missing(keys: &[String]) -> String {
    match keys.len() {
        0 => String::new(),
        1 => keys[0].clone(),
        n => format!("{} (+{} more)", keys[0], n - 1),
    }
}

/// RFC 3339 to `YYYY-MM-DD HH:MM:SS` (UTC as the server sends it): enough for people, and
/// `--json` keeps the exact value.
fn timestamp(s: &str) -> String {
    if s.len() >= 19 && s.as_bytes().get(10) == Some(&b'T') {
        format!("{} {}", &s[..10], &s[11..19])
    } else {
        s.to_string()
    }
}

fn duration(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// A campaign's device selector: a plain id or name, or a JSON selector shown compactly.
fn selector(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn gpu_name(fingerprint: &Value) -> String {
    fingerprint["gpu"]["name"]
        .as_str()
        .unwrap_or("(registered by hand)")
        .to_string()
}

/// Nested JSON as dotted keys and display values, in the document's order.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn is_loopback(server: &str) -> bool {
    ["://127.", "://localhost", "://[::1]"]
        .iter()
        .any(|p| server.contains(p))
}

fn port_of(server: &str) -> String {
    reqwest::Url::parse(server)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .map_or("8080".into(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Entry, Table as ApiTable};
    use serde_json::json;

    fn r() -> Renderer {
        Renderer::default()
    }

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn fixture_front() -> Front {
        from(json!({
            "id": "5b1e2c1e-0000-4000-8000-000000000001",
            "state": "done",
            "generation": 3,
            "accuracy_kind": "proxy",
            "front": [
                {"arch": "0123456789ab01", "accuracy": 74.1, "latency_ms": 9.5, "params": 4_300_000, "macs": 210_000_000},
                {"arch": "00000000000000", "accuracy": 72.25, "latency_ms": 7.25, "params": 3_900_000, "macs": 180_000_000},
                {"arch": "bbbbbbbbbbbbbb", "accuracy": 75.8, "latency_ms": 12.0, "params": 5_100_000, "macs": 310_000_000}
            ],
            "references": [
                {"name": "MoGA-A", "arch": "453969358533aa", "accuracy": 75.9, "latency_ms": 11.0, "params": 5_100_000, "macs": 304_000_000},
                {"name": "MobileNetV3-Large", "arch": "MobileNetV3-Large", "accuracy": null, "latency_ms": null, "params": 5_400_000, "macs": 217_000_000}
            ]
        }))
    }

    #[test]
    fn front_table_ranks_by_latency_and_marks_references() {
        insta::assert_snapshot!(r().front(&fixture_front()));
    }

    #[test]
    fn front_csv_has_every_row_unrounded() {
        insta::assert_snapshot!(front_csv(&fixture_front()));
    }

    #[test]
    fn a_latency_table_with_missing_blocks() {
        let table = ApiTable {
            device: "d2f0c3a4-0000-4000-8000-000000000002".into(),
            device_name: "pixel-7".into(),
            framework: "wgpu-fused".into(),
            space: "moga-mbv3".into(),
            entries: vec![
                Entry {
                    key: "conv-i224x224x3-o16-k3-s2-hswish".into(),
                    part: "stem".into(),
                    framework_version: "1".into(),
                    count: 30,
                    min_ms: 0.41,
                    p10_ms: 0.42,
                    median_ms: 0.4375,
                    p90_ms: 0.51,
                    mad_ms: 0.0125,
                    ci_low_ms: Some(0.43),
                    ci_high_ms: Some(0.445),
                    stale: false,
                },
                Entry {
                    key: "gap-i7x7x960".into(),
                    part: "head".into(),
                    framework_version: "0".into(),
                    count: 5,
                    min_ms: 0.05,
                    p10_ms: 0.05,
                    median_ms: 0.06,
                    p90_ms: 0.07,
                    mad_ms: 0.001,
                    ci_low_ms: None,
                    ci_high_ms: None,
                    stale: true,
                },
            ],
            missing: (0..10).map(|i| format!("block-{i}")).collect(),
        };
        insta::assert_snapshot!(r().table(&table));
    }

    #[test]
    fn table_list_devices_and_tokens() {
        let tables: Vec<TableSummary> = from(json!([
            {"device": "d2f0c3a4-0000-4000-8000-000000000002", "device_name": "pixel-7", "framework": "wgpu-fused",
             "space": "moga-mbv3", "entries": 126, "blocks": 126, "coverage": 1.0, "stale": 0,
             "last_measured_at": "2026-03-01T12:34:56.789Z",
             "validation": {"within_10pct": 0.875, "within_5pct": 0.5, "networks": 8}},
            {"device": "d2f0c3a4-0000-4000-8000-000000000003", "device_name": "lavapipe", "framework": "wgpu-direct",
             "space": "moga-mbv3", "entries": 63, "blocks": 126, "coverage": 0.5, "stale": 2,
             "last_measured_at": null, "validation": null}
        ]));
        insta::assert_snapshot!("table_list", r().table_list(&tables));
        let devices: Vec<Device> = from(json!([
            {"id": "d2f0c3a4-0000-4000-8000-000000000002", "name": "pixel-7", "status": "online", "labels": ["lab"],
             "agents": 1, "fingerprint": {"os": "android", "gpu": {"name": "Mali-G710", "backend": "vulkan"}},
             "last_seen_at": "2026-03-01T12:34:56Z", "created_at": "2026-02-01T08:00:00Z"},
            {"id": "d2f0c3a4-0000-4000-8000-000000000004", "name": "imported", "status": "offline", "labels": [],
             "agents": 0, "fingerprint": {}, "last_seen_at": null, "created_at": "2026-02-01T08:00:00Z"}
        ]));
        insta::assert_snapshot!("devices", r().devices(&devices));
        let agents: Vec<Agent> = from(json!([
            {"id": "a0000000-0000-4000-8000-000000000001", "device_id": "d2f0c3a4-0000-4000-8000-000000000002",
             "name": "pixel-7", "prefix": "gpa_1234", "agent_version": "0.1.0",
             "created_at": "2026-02-01T08:00:00Z", "last_heartbeat_at": "2026-03-01T12:34:50Z", "revoked_at": null},
            {"id": "a0000000-0000-4000-8000-000000000002", "device_id": "elsewhere",
             "name": "other", "prefix": "gpa_5678", "agent_version": "0.1.0", "created_at": "2026-02-01T08:00:00Z"}
        ]));
        insta::assert_snapshot!("device", r().device(&devices[0], Some(&agents)));
        let tokens: Vec<EnrollmentToken> = from(json!([
            {"id": "e0000000-0000-4000-8000-000000000001", "label": "pixel-7", "prefix": "gpe_ab12", "device_labels": [],
             "max_uses": 1, "uses": 1, "expires_at": "2026-03-02T00:00:00Z", "created_at": "2026-03-01T00:00:00Z"},
            {"id": "e0000000-0000-4000-8000-000000000002", "label": "lab", "prefix": "gpe_cd34", "device_labels": ["lab"],
             "max_uses": 5, "uses": 2, "expires_at": "2026-03-02T00:00:00Z", "created_at": "2026-03-01T00:00:00Z",
             "revoked_at": "2026-03-01T06:00:00Z"}
        ]));
        insta::assert_snapshot!("tokens", r().tokens(&tokens));
        let mut created = tokens[0].clone();
        created.token = Some("gpe_ab12SECRET".into());
        created.uses = 0;
        insta::assert_snapshot!(
            "token_created",
            r().token_created(&created, "http://127.0.0.1:8080")
        );
    }

    #[test]
    fn predictions_with_params_and_a_missing_block() {
        let preds: Vec<Prediction> = from(json!([
            {"arch": "MoGA-A", "name": "MoGA-A", "statistic": "median", "total_ms": 11.25, "uncertainty_ms": 0.5, "missing": []},
            {"arch": "00000000000000", "statistic": "median", "total_ms": null, "missing": ["a", "b", "c"]}
        ]));
        let analysis: Vec<Analysis> = from(json!([
            {"arch": "MoGA-A", "params": 5_100_000, "macs": 304_000_000},
            {"arch": "00000000000000", "params": 3_900_000, "macs": 180_000_000}
        ]));
        insta::assert_snapshot!(r().predictions(&preds, &analysis));
    }

    #[test]
    fn search_status_and_list() {
        let s: SearchStatus = from(json!({
            "id": "5b1e2c1e-0000-4000-8000-000000000001", "state": "running", "space": "moga-mbv3",
            "generation": 2, "generations": 3, "population": 8, "evaluations": 24,
            "accuracy_kind": "proxy", "cancel_requested": false, "elapsed_s": 75.5, "estimate_s": 30.0,
            "created_at": "2026-03-01T12:00:00Z",
            "hypervolume": [{"generation": 1, "hypervolume": 0.25, "front_size": 4},
                            {"generation": 2, "hypervolume": 0.3125, "front_size": 5}],
            "request": {"tables": [{"device": "d2f0c3a4-0000-4000-8000-000000000002", "framework": "wgpu-fused"}]}
        }));
        insta::assert_snapshot!("search_status", r().search(&s));
        insta::assert_snapshot!("search_list", r().searches(std::slice::from_ref(&s)));
    }

    #[test]
    fn campaign_rendering() {
        let c: Campaign = from(json!({
            "id": "c0000000-0000-4000-8000-000000000001", "state": "failed", "space": "moga-mbv3",
            "device": "pixel-7", "frameworks": ["wgpu-direct", "wgpu-fused"],
            "progress": {"jobs": 20, "queued": 0, "leased": 0, "done": 19, "failed": 1, "cancelled": 0,
                         "items": 264, "items_done": 250},
            "failure_reason": "a job failed 5 attempts", "created_at": "2026-03-01T12:00:00Z",
            "protocol": {}, "validation": {}
        }));
        insta::assert_snapshot!("campaign", r().campaign(&c));
        insta::assert_snapshot!("campaigns", r().campaigns(std::slice::from_ref(&c)));
    }

    #[test]
    fn empty_lists_say_what_to_do() {
        assert!(r().devices(&[]).contains("gpulut tokens create"));
        assert!(r().table_list(&[]).contains("gpulut campaigns create"));
    }

    #[test]
    fn small_helpers() {
        assert_eq!(
            timestamp("2026-03-01T12:34:56.789+00:00"),
            "2026-03-01 12:34:56"
        );
        assert_eq!(timestamp("soon"), "soon");
        assert_eq!(duration(5.0), "5.0 s");
        assert_eq!(duration(125.0), "2m 05s");
        assert_eq!(duration(7300.0), "2h 01m");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(!is_loopback("http://10.0.0.2:8080"));
        assert_eq!(port_of("http://localhost:9000"), "9000");
    }

    #[test]
    fn narrow_terminals_wrap_instead_of_overflowing() {
        let out = Renderer { width: Some(60) }.front(&fixture_front());
        for line in out
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(['┌', '│', '├', '└']))
        {
            assert!(line.chars().count() <= 60, "{line}");
        }
    }
}
