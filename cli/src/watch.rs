//! Following a campaign or a search until it ends. The server has no push channel for these,
//! so the CLI polls. On a terminal a bar redraws in place; in a pipe or a log (where indicatif
//! hides the bar) a plain line goes to stderr each time the progress changes, so scripts and
//! CI logs still show what is happening.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::api::{Campaign, SearchStatus, is_terminal};
use crate::client::Client;
use crate::error::{Error, Result};

/// How many failed polls in a row are tolerated before giving up: a server restart or a
/// network blip should not end a long watch.
const MAX_POLL_FAILURES: u32 = 10;

const SEARCH_BAR: &str =
    "{spinner} search {prefix} [{bar:32}] generation {pos}/{len} {msg} ({elapsed})";
const CAMPAIGN_BAR: &str =
    "{spinner} campaign {prefix} [{bar:32}] {pos}/{len} jobs {msg} ({elapsed})";

fn interval(seconds: f64) -> Result<Duration> {
    if !(seconds.is_finite() && (0.05..=3600.0).contains(&seconds)) {
        return Err(Error::Input(format!(
            "--interval {seconds}: expected seconds between 0.05 and 3600"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Progress shown as a bar on a terminal, or as a line per change elsewhere.
struct Progress {
    pb: ProgressBar,
    lines: bool,
    last: std::cell::RefCell<String>,
}

impl Progress {
    fn new(template: &str, what: &str, id: &str) -> Self {
        let pb = bar(0, template);
        pb.set_prefix(id.chars().take(8).collect::<String>());
        Self {
            pb,
            lines: !std::io::stderr().is_terminal(),
            last: std::cell::RefCell::new(format!("{what} {id}")),
        }
    }

    /// `line` is the whole state in words; it is printed only when it differs from the last.
    fn update(&self, len: u64, pos: u64, msg: String, line: String) {
        self.pb.set_length(len);
        self.pb.set_position(pos);
        self.pb.set_message(msg);
        if self.lines && *self.last.borrow() != line {
            eprintln!("{line}");
            *self.last.borrow_mut() = line;
        }
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Polls `fetch` until `done` says so; transient connection trouble is retried, anything the
/// server refuses (404, 401) ends the watch at once.
fn poll<T>(
    every: Duration,
    pb: &ProgressBar,
    mut fetch: impl FnMut() -> Result<(T, Value)>,
    mut show: impl FnMut(&T),
    done: impl Fn(&T) -> bool,
) -> Result<(T, Value)> {
    let mut failures = 0;
    loop {
        match fetch() {
            Ok((item, raw)) => {
                failures = 0;
                show(&item);
                if done(&item) {
                    return Ok((item, raw));
                }
            }
            Err(e @ Error::Connect { .. }) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    return Err(e);
                }
                pb.set_message(format!("retrying: {e}"));
            }
            Err(e) => return Err(e),
        }
        std::thread::sleep(every);
    }
}

/// `GET /v1/{collection}/{id}`, decoded for display and kept raw for `--json`.
fn fetch_status<T: serde::de::DeserializeOwned>(
    client: &Client,
    collection: &str,
    id: &str,
) -> Result<(T, Value)> {
    let raw: Value = client.get(&["v1", collection, id], &[])?;
    let item = serde_json::from_value(raw.clone()).map_err(|e| Error::Decode {
        what: format!("GET /v1/{collection}/{id}"),
        cause: e.to_string(),
    })?;
    Ok((item, raw))
}

/// Follows a search until it is done, failed or cancelled; returns its last status.
pub fn search(client: &Client, id: &str, every: f64) -> Result<(SearchStatus, Value)> {
    let every = interval(every)?;
    let progress = Progress::new(SEARCH_BAR, "search", id);
    let pb = &progress.pb;
    let fetch = || fetch_status::<SearchStatus>(client, "searches", id);
    let show = |s: &SearchStatus| {
        let hv = s.latest_hypervolume().map_or(String::new(), |h| {
            format!("hv {:.4}, front {}", h.hypervolume, h.front_size)
        });
        let line = format!(
            "search {id}: {}, generation {}/{} {hv}",
            s.state, s.generation, s.generations
        );
        progress.update(
            u64::from(s.generations),
            u64::from(s.generation),
            format!("{} {hv}", s.state),
            line.trim_end().to_string(),
        );
    };
    let result = poll(every, pb, fetch, show, |s| is_terminal(&s.state));
    pb.finish_and_clear();
    result
}

/// Follows a campaign until every job is done, failed or cancelled.
pub fn campaign(client: &Client, id: &str, every: f64) -> Result<(Campaign, Value)> {
    let every = interval(every)?;
    let progress = Progress::new(CAMPAIGN_BAR, "campaign", id);
    let pb = &progress.pb;
    let fetch = || fetch_status::<Campaign>(client, "campaigns", id);
    let show = |c: &Campaign| {
        let p = &c.progress;
        let ended = (p.done + p.failed + p.cancelled).max(0) as u64;
        let msg = format!(
            "{}, {} running, {}/{} items",
            c.state, p.leased, p.items_done, p.items
        );
        let line = format!("campaign {id}: {ended}/{} jobs ended, {msg}", p.jobs);
        progress.update(p.jobs.max(0) as u64, ended, msg, line);
    };
    let result = poll(every, pb, fetch, show, |c| is_terminal(&c.state));
    pb.finish_and_clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_templates_parse() {
        for t in [SEARCH_BAR, CAMPAIGN_BAR] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn intervals_are_bounded() {
        assert!(interval(0.5).is_ok());
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            assert!(interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn polling_retries_connection_trouble_then_gives_up() {
        let pb = ProgressBar::hidden();
        let mut calls = 0;
        let r: Result<(u32, Value)> = poll(
            Duration::from_millis(1),
            &pb,
            || {
                calls += 1;
                if calls < 3 {
                    Err(Error::Connect {
                        server: "s".into(),
                        cause: "refused".into(),
                    })
                } else {
                    Ok((calls, Value::Null))
                }
            },
            |_| {},
            |n| *n >= 4,
        );
        assert_eq!(r.unwrap().0, 4);

        let r: Result<(u32, Value)> = poll(
            Duration::from_millis(1),
            &pb,
            || {
                Err(Error::Connect {
                    server: "s".into(),
                    cause: "refused".into(),
                })
            },
            |_| {},
            |_| true,
        );
        assert!(matches!(r, Err(Error::Connect { .. })));
    }

    #[test]
    fn a_refusal_ends_the_watch_at_once() {
        let pb = ProgressBar::hidden();
        let mut calls = 0;
        let r: Result<(u32, Value)> = poll(
            Duration::from_millis(1),
            &pb,
            || {
                calls += 1;
                Err(Error::Input("gone".into()))
            },
            |_| {},
            |_| true,
        );
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
