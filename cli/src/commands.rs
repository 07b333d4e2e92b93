//! What each command does: one request or a few, then a rendering. Every command prints the
//! server's own JSON with `--json`, so scripts never depend on the table layout.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{self, Campaign, Device, Front, SearchStatus};
use crate::cli::{
    CampaignsCommand, Cli, Command, DevicesCommand, PlotArgs, PredictArgs, SearchCommand,
    TablesCommand, TokensCommand,
};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::plot::{self, PlotInfo};
use crate::render::{self, Renderer};
use crate::{request, watch};

/// Exit status of a watch whose campaign or search ended failed or cancelled: distinct from 1
/// (the CLI itself failed) so a script can tell "the search failed" from "could not ask".
pub const EXIT_UNSUCCESSFUL: u8 = 3;

/// Runs one command line; errors are for the caller to print.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let client = Client::new(&cli.server, cli.token)?;
    let ctx = Ctx {
        client,
        render: Renderer {
            width: if std::io::stdout().is_terminal() {
                comfy_table::Table::new().width()
            } else {
                None
            },
        },
    };
    match cli.command {
        Command::Tokens(c) => ctx.tokens(c),
        Command::Devices(c) => ctx.devices(c),
        Command::Tables(c) => ctx.tables(c),
        Command::Predict(a) => ctx.predict(&a),
        Command::Campaigns(c) => ctx.campaigns(c),
        Command::Search(c) => ctx.search(c),
    }
}

struct Ctx {
    client: Client,
    render: Renderer,
}

fn out(text: &str) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn pretty(v: &Value) -> String {
    // Serialising a Value cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn typed<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T> {
    T::deserialize(v).map_err(|e| Error::Decode {
        what: what.to_string(),
        cause: e.to_string(),
    })
}

/// Prints the raw document with `--json`, else its rendering.
fn show<T: DeserializeOwned>(
    raw: &Value,
    json: bool,
    what: &str,
    render: impl FnOnce(&T) -> String,
) -> Result<ExitCode> {
    if json {
        return out(&pretty(raw));
    }
    let v: T = typed(raw, what)?;
    out(&render(&v))
}

impl Ctx {
    fn tokens(&self, c: TokensCommand) -> Result<ExitCode> {
        let c_ = &self.client;
        match c {
            TokensCommand::Create(a) => {
                let raw: Value =
                    c_.post(&["v1", "enrollment-tokens"], Some(&request::token(&a)))?;
                show(&raw, a.json.json, "POST /v1/enrollment-tokens", |t| {
                    self.render.token_created(t, &c_.server())
                })
            }
            TokensCommand::List(j) => {
                let raw: Value = c_.get(&["v1", "enrollment-tokens"], &[])?;
                show(&raw, j.json, "GET /v1/enrollment-tokens", |t: &Vec<_>| {
                    self.render.tokens(t)
                })
            }
            TokensCommand::Revoke { id, json } => {
                let raw: Value = c_.delete(&["v1", "enrollment-tokens", &id])?;
                show(
                    &raw,
                    json.json,
                    "DELETE /v1/enrollment-tokens",
                    |t: &api::EnrollmentToken| {
                        format!("revoked enrollment token {} ({})", t.id, t.label)
                    },
                )
            }
        }
    }

    fn devices(&self, c: DevicesCommand) -> Result<ExitCode> {
        match c {
            DevicesCommand::List(j) => {
                let raw: Value = self.client.get(&["v1", "devices"], &[])?;
                show(&raw, j.json, "GET /v1/devices", |d: &Vec<_>| {
                    self.render.devices(d)
                })
            }
            DevicesCommand::Show { device, json } => {
                let raw: Value = self.client.get(&["v1", "devices", &device], &[])?;
                if json.json {
                    return out(&pretty(&raw));
                }
                let d: Device = typed(&raw, "GET /v1/devices/{id}")?;
                // Listing agents is for admins; a user key still sees the device itself.
                let agents: Option<Vec<api::Agent>> =
                    match self.client.get::<Vec<api::Agent>>(&["v1", "agents"], &[]) {
                        Ok(a) => Some(a),
                        Err(e) if matches!(e.status(), Some(401 | 403)) => None,
                        Err(e) => return Err(e),
                    };
                out(&self.render.device(&d, agents.as_deref()))
            }
        }
    }

    fn tables(&self, c: TablesCommand) -> Result<ExitCode> {
        match c {
            TablesCommand::List { space, json } => {
                let mut raw: Value = self.client.get(&["v1", "tables"], &[])?;
                if let (Some(space), Some(list)) = (&space, raw.as_array_mut()) {
                    list.retain(|t| t["space"].as_str() == Some(space));
                }
                show(&raw, json.json, "GET /v1/tables", |t: &Vec<_>| {
                    self.render.table_list(t)
                })
            }
            TablesCommand::Get { table, json } => {
                let raw: Value = self.client.get(
                    &["v1", "tables", &table.device, &table.framework],
                    &[("space", table.space.clone())],
                )?;
                show(
                    &raw,
                    json.json,
                    "GET /v1/tables/{device}/{framework}",
                    |t| self.render.table(t),
                )
            }
            TablesCommand::Export {
                table,
                format,
                output,
            } => {
                let bytes = self.client.get_bytes(
                    &["v1", "tables", &table.device, &table.framework],
                    &[
                        ("space", table.space.clone()),
                        ("format", format.as_query().to_string()),
                    ],
                )?;
                match output {
                    Some(path) => {
                        write_file(&path, &bytes)?;
                        eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
                        Ok(ExitCode::SUCCESS)
                    }
                    None => {
                        let mut stdout = std::io::stdout().lock();
                        stdout.write_all(&bytes)?;
                        stdout.flush()?;
                        Ok(ExitCode::SUCCESS)
                    }
                }
            }
        }
    }

    fn predict(&self, a: &PredictArgs) -> Result<ExitCode> {
        let archs = a
            .archs
            .iter()
            .map(|s| request::arch(s))
            .collect::<Result<Vec<_>>>()?;
        let t = &a.table;
        let mut body = json!({ "space": t.space, "archs": archs });
        // The per-block breakdown is ten times the answer; the table does not show it.
        if !a.json.json {
            body["breakdown"] = false.into();
        }
        if let Some(s) = &a.statistic {
            body["statistic"] = s.clone().into();
        }
        if a.calibrated {
            body["calibrated"] = true.into();
        }
        let raw: Value = self.client.post(
            &["v1", "tables", &t.device, &t.framework, "predict"],
            Some(&body),
        )?;
        if a.json.json {
            return out(&pretty(&raw));
        }
        let preds: Vec<api::Prediction> = typed(&raw, "POST predict")?;
        let analysis: Vec<api::Analysis> = self.client.post(
            &["v1", "spaces", &t.space, "analyze"],
            Some(&json!({ "archs": archs })),
        )?;
        out(&self.render.predictions(&preds, &analysis))
    }

    fn campaigns(&self, c: CampaignsCommand) -> Result<ExitCode> {
        match c {
            CampaignsCommand::Create(a) => {
                let raw: Value = self
                    .client
                    .post(&["v1", "campaigns"], Some(&request::campaign(&a)))?;
                let created: Campaign = typed(&raw, "POST /v1/campaigns")?;
                if a.watch {
                    eprintln!(
                        "campaign {} queued: {} jobs",
                        created.id, created.progress.jobs
                    );
                    return self.watch_campaign(&created.id, a.interval, a.json.json);
                }
                if a.json.json {
                    return out(&pretty(&raw));
                }
                out(&format!(
                    "{}follow it: gpulut campaigns watch {}",
                    self.render.campaign(&created),
                    created.id
                ))
            }
            CampaignsCommand::List(j) => {
                let raw: Value = self.client.get(&["v1", "campaigns"], &[])?;
                show(&raw, j.json, "GET /v1/campaigns", |c: &Vec<_>| {
                    self.render.campaigns(c)
                })
            }
            CampaignsCommand::Show { id, json } => {
                let raw: Value = self.client.get(&["v1", "campaigns", &id], &[])?;
                show(&raw, json.json, "GET /v1/campaigns/{id}", |c| {
                    self.render.campaign(c)
                })
            }
            CampaignsCommand::Watch(w) => self.watch_campaign(&w.id, w.interval, w.json.json),
            CampaignsCommand::Cancel { id, json } => {
                let raw: Value = self
                    .client
                    .post::<Value, _>(&["v1", "campaigns", &id, "cancel"], None)?;
                show(&raw, json.json, "POST /v1/campaigns/{id}/cancel", |c| {
                    self.render.campaign(c)
                })
            }
        }
    }

    fn watch_campaign(&self, id: &str, every: f64, json: bool) -> Result<ExitCode> {
        let (c, raw) = watch::campaign(&self.client, id, every)?;
        if json {
            out(&pretty(&raw))?;
        } else {
            out(&self.render.campaign(&c))?;
        }
        Ok(if c.state == "done" {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_UNSUCCESSFUL)
        })
    }

    fn search(&self, c: SearchCommand) -> Result<ExitCode> {
        match c {
            SearchCommand::Start(a) => {
                let body = request::search(&a)?;
                let raw: Value = self.client.post(&["v1", "searches"], Some(&body))?;
                let id = raw["id"]
                    .as_str()
                    .ok_or_else(|| Error::Decode {
                        what: "POST /v1/searches".into(),
                        cause: "no `id` in the answer".into(),
                    })?
                    .to_string();
                if a.watch {
                    eprintln!("search {id} queued");
                    return self.watch_search(&id, a.interval, a.json.json);
                }
                if a.json.json {
                    return out(&pretty(&raw));
                }
                out(&format!(
                    "search {id} {}\nfollow it: gpulut search watch {id}\nthen:      gpulut search front {id}\n",
                    raw["state"].as_str().unwrap_or("queued")
                ))
            }
            SearchCommand::List { state, limit, json } => {
                let mut q = Vec::new();
                if let Some(s) = state {
                    q.push(("state", s));
                }
                if let Some(l) = limit {
                    q.push(("limit", l.to_string()));
                }
                let raw: Value = self.client.get(&["v1", "searches"], &q)?;
                show(&raw, json.json, "GET /v1/searches", |s: &Vec<_>| {
                    self.render.searches(s)
                })
            }
            SearchCommand::Status { id, json } => {
                let raw: Value = self.client.get(&["v1", "searches", &id], &[])?;
                show(&raw, json.json, "GET /v1/searches/{id}", |s| {
                    self.render.search(s)
                })
            }
            SearchCommand::Watch(w) => self.watch_search(&w.id, w.interval, w.json.json),
            SearchCommand::Cancel { id, json } => {
                let raw: Value = self
                    .client
                    .post::<Value, _>(&["v1", "searches", &id, "cancel"], None)?;
                show(&raw, json.json, "POST /v1/searches/{id}/cancel", |s| {
                    self.render.search(s)
                })
            }
            SearchCommand::Front(f) => {
                // The breakdown per table is most of the document; only --json shows it.
                let q = if f.json {
                    vec![]
                } else {
                    vec![("breakdown", "false".to_string())]
                };
                let raw: Value = self.client.get(&["v1", "searches", &f.id, "front"], &q)?;
                if f.json {
                    return out(&pretty(&raw));
                }
                let front: Front = typed(&raw, "GET /v1/searches/{id}/front")?;
                if f.csv {
                    return out(&render::front_csv(&front));
                }
                out(&self.render.front(&front))
            }
            SearchCommand::Plot(p) => self.plot(&p),
        }
    }

    fn watch_search(&self, id: &str, every: f64, json: bool) -> Result<ExitCode> {
        let (s, raw) = watch::search(&self.client, id, every)?;
        if json {
            out(&pretty(&raw))?;
        } else {
            out(&self.render.search(&s))?;
        }
        if s.state == "done" {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!(
                "error: search {id} ended {}{}",
                s.state,
                s.failure_reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(": {r}"))
            );
            Ok(ExitCode::from(EXIT_UNSUCCESSFUL))
        }
    }

    fn plot(&self, p: &PlotArgs) -> Result<ExitCode> {
        // Refuse a bad file name before asking the server anything.
        plot::ImageFormat::from_path(&p.output)?;
        let status: SearchStatus = self.client.get(&["v1", "searches", &p.id], &[])?;
        let front: Front = self.client.get(
            &["v1", "searches", &p.id, "front"],
            &[("breakdown", "false".into())],
        )?;
        // Device names read better than ids; without them (an old server) ids will do.
        let names: HashMap<String, String> = self
            .client
            .get::<Vec<api::TableSummary>>(&["v1", "tables"], &[])
            .map(|ts| ts.into_iter().map(|t| (t.device, t.device_name)).collect())
            .unwrap_or_default();
        let info = plot_info(&status, &front, &names);
        plot::write(&front, &info, (p.width, p.height), &p.output)?;
        let plotted_refs = front
            .references
            .iter()
            .filter(|r| r.accuracy.is_some() && r.latency_ms.is_some())
            .count();
        out(&format!(
            "wrote {} ({} front members, {} reference networks)",
            p.output.display(),
            front.front.len(),
            plotted_refs
        ))
    }
}

/// Title and labels that say which search, space, tables and accuracy source a plot shows.
pub fn plot_info(s: &SearchStatus, f: &Front, names: &HashMap<String, String>) -> PlotInfo {
    let tables: Vec<String> = s.request["tables"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let d = t["device"].as_str().unwrap_or("?");
                    let d = names.get(d).map_or(d, String::as_str);
                    format!("{d}/{}", t["framework"].as_str().unwrap_or("?"))
                })
                .collect()
        })
        .unwrap_or_default();
    let statistic = s.request["latency"]["statistic"]
        .as_str()
        .unwrap_or("median");
    let combine = if tables.len() > 1 {
        format!(
            ", {} over the fleet",
            s.request["latency"]["combine"].as_str().unwrap_or("max")
        )
    } else {
        String::new()
    };
    PlotInfo {
        title: format!("Pareto front of search {}", s.id),
        subtitle: format!(
            "{} · {} · accuracy: {} · generation {}/{} · {} members ({})",
            s.space,
            tables.join(", "),
            f.accuracy_kind,
            f.generation,
            s.generations,
            f.front.len(),
            f.state
        ),
        latency_label: format!("latency (ms, {statistic} of summed blocks{combine})"),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}
