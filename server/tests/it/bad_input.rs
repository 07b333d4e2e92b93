//! The bad-input corpus (`server/tests/corpus/`, format in its README): every case is sent to
//! the real server over real HTTP, against a database holding real state (a seeded table, an
//! enrolled agent holding a leased job, a campaign, a manual device), and must be refused with
//! a 4xx problem+json that has a detail, and must leave every table of the database exactly as
//! it was. All failures are collected and reported together, so one run shows every hole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{ADMIN_TOKEN, TestApp, spawn_app};

/// Columns that change on any authenticated request, whatever its body: the fingerprint leaves
/// them out. Every other column of every table must be untouched by a refused request.
const VOLATILE_COLUMNS: &[&str] = &[
    // api_keys: the key's use is recorded when it authenticates.
    "last_used_at",
    // A trigger bumps updated_at with any update, the one above included.
    "updated_at",
    // agents/devices: signs of life.
    "last_heartbeat_at",
    "last_seen_at",
];

const HOSTILE_FILE: &str = "_hostile_strings.json";
/// Cases in flight at once.
const BATCH: usize = 32;
/// Hostile strings are cut to this many characters in paths and query strings: servers and
/// clients limit URIs (hyper's is 64 KiB), and the long cases are for bodies.
const MAX_PATH_CHARS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    group: String,
    #[allow(dead_code)]
    description: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostileFile {
    #[allow(dead_code)]
    description: String,
    strings: Vec<Hostile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hostile {
    name: String,
    value: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Who {
    Admin,
    User,
    Agent,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Expect {
    Status(u16),
    Class(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    method: String,
    path: String,
    #[serde(rename = "as")]
    who: Who,
    /// `none` sends no content-type header; absent means `application/json` when there is a
    /// body.
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    raw_body: Option<String>,
    #[serde(default)]
    generator: Option<String>,
    /// Expand into one case per (string leaf of `body`, hostile string); with `{hostile}` in
    /// the path, one case per hostile string there.
    #[serde(default)]
    hostile_strings: bool,
    /// Body keys left alone by the expansion.
    #[serde(default)]
    keep: Vec<String>,
    expect: Expect,
}

/// What the cases' templates are filled with.
struct Ids {
    vars: BTreeMap<&'static str, String>,
}

/// A case made concrete: the bytes to send.
struct Prepared {
    group: String,
    name: String,
    method: Method,
    path: String,
    who: Who,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
    /// Sent over a raw socket with a content-length longer than the bytes that follow.
    truncated_stream: bool,
    expect: Expect,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("server/tests/corpus exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Fills `{name}` variables and the generators `{repeat:N:TEXT}`, `{nested:N}` (N nested
/// arrays), `{nested_obj:N}` (N nested objects), `{samples:N:V}` (V, N times, comma
/// separated) and `{import_rows:N}` (N import rows with distinct keys).
fn fill(text: &str, ids: &Ids) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        match expand_template(inner, ids) {
            Some(s) => {
                out.push_str(&s);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn expand_template(inner: &str, ids: &Ids) -> Option<String> {
    if let Some(v) = ids.vars.get(inner) {
        return Some(v.clone());
    }
    let mut parts = inner.splitn(3, ':');
    let (kind, n) = (parts.next()?, parts.next()?.parse::<usize>().ok()?);
    let arg = parts.next();
    Some(match (kind, arg) {
        ("repeat", Some(t)) => t.repeat(n),
        ("nested", None) => format!("{}{}", "[".repeat(n), "]".repeat(n)),
        ("nested_obj", None) => format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n)),
        ("import_rows", None) => (0..n)
            .map(|i| format!(r#"{{"key":"k{i}","ms":1}}"#))
            .collect::<Vec<_>>()
            .join(","),
        ("samples", Some(v)) => {
            let mut s = String::with_capacity(n * (v.len() + 1));
            for i in 0..n {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(v);
            }
            s
        }
        _ => return None,
    })
}

fn fill_value(v: &Value, ids: &Ids) -> Value {
    match v {
        Value::String(s) => Value::String(fill(s, ids)),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill_value(x, ids)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), fill_value(x, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// JSON pointers of every string leaf of `v`, skipping object keys named in `keep`.
fn string_leaves(v: &Value, at: String, keep: &[String], out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(at),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                string_leaves(x, format!("{at}/{i}"), keep, out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                if !keep.contains(k) {
                    string_leaves(x, format!("{at}/{k}"), keep, out);
                }
            }
        }
        _ => {}
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_PATH_CHARS).collect()
}

fn short(s: &str) -> String {
    let t: String = s.chars().take(40).collect();
    if t.len() < s.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// One case, or its hostile-string expansion, made concrete.
fn prepare(group: &str, case: &Case, ids: &Ids, hostile: &[Hostile]) -> Vec<Prepared> {
    let mut variants: Vec<(String, String, Option<Value>)> = Vec::new();
    if case.hostile_strings {
        assert!(
            case.raw_body.is_none() && case.generator.is_none(),
            "{group}/{}: hostile_strings expands `body` only",
            case.name
        );
        if case.path.contains("{hostile}") {
            for h in hostile {
                let path = case.path.replace(
                    "{hostile}",
                    &percent_encode(&truncate(&fill(&h.value, ids))),
                );
                variants.push((
                    format!("{} [path: {}]", case.name, h.name),
                    path,
                    case.body.clone(),
                ));
            }
        }
        if let Some(body) = &case.body {
            let mut leaves = Vec::new();
            string_leaves(body, String::new(), &case.keep, &mut leaves);
            for leaf in &leaves {
                for h in hostile {
                    let mut b = body.clone();
                    *b.pointer_mut(leaf).unwrap() = Value::String(h.value.clone());
                    variants.push((
                        format!("{} [{leaf} = {}]", case.name, h.name),
                        case.path.clone(),
                        Some(b),
                    ));
                }
            }
        }
        assert!(
            !variants.is_empty(),
            "{group}/{}: hostile_strings found nothing to replace",
            case.name
        );
    } else {
        variants.push((case.name.clone(), case.path.clone(), case.body.clone()));
    }
    variants
        .into_iter()
        .map(|(name, path, body)| {
            let body_text: Option<Vec<u8>> = match (&body, &case.raw_body) {
                (Some(_), Some(_)) => panic!("{group}/{name}: both `body` and `raw_body`"),
                (Some(b), None) => Some(serde_json::to_vec(&fill_value(b, ids)).unwrap()),
                (None, Some(r)) => Some(fill(r, ids).into_bytes()),
                (None, None) => None,
            };
            let mut truncated_stream = false;
            let body_bytes = match case.generator.as_deref() {
                None => body_text,
                Some("truncated") => {
                    let b = body_text.expect("`truncated` cuts the case's body");
                    Some(b[..b.len() / 2].to_vec())
                }
                Some("truncated_stream") => {
                    truncated_stream = true;
                    body_text
                }
                Some("invalid_utf8") => {
                    // `{invalid_utf8}` in the body becomes bytes that are not UTF-8.
                    let b = body_text.expect("`invalid_utf8` edits the case's body");
                    let text = String::from_utf8(b).unwrap();
                    let (a, z) = text
                        .split_once("INVALID_UTF8")
                        .expect("the body holds the marker INVALID_UTF8");
                    let mut v = a.as_bytes().to_vec();
                    v.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
                    v.extend_from_slice(z.as_bytes());
                    Some(v)
                }
                Some(other) => panic!("{group}/{name}: unknown generator `{other}`"),
            };
            let content_type = match case.content_type.as_deref() {
                Some("none") => None,
                Some(ct) => Some(ct.to_string()),
                None => body_bytes.as_ref().map(|_| "application/json".to_string()),
            };
            Prepared {
                group: group.to_string(),
                name,
                method: Method::from_bytes(case.method.as_bytes())
                    .unwrap_or_else(|_| panic!("{group}/{}: bad method", case.name)),
                path: fill(&path, ids),
                who: case.who,
                content_type,
                body: body_bytes,
                truncated_stream,
                expect: case.expect.clone(),
            }
        })
        .collect()
}

/// Every table of the public schema: its row count and an md5 of its rows (volatile columns
/// left out) in a stable order.
async fn fingerprint(conn: &mut PgConnection) -> BTreeMap<String, (i64, String)> {
    let tables: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT c.table_name::text, array_agg(c.column_name::text ORDER BY c.ordinal_position)
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND NOT (c.column_name::text = ANY($1))
         GROUP BY c.table_name ORDER BY c.table_name",
    )
    .bind(VOLATILE_COLUMNS)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "the schema has its tables: {tables:?}");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let sql = tables
        .iter()
        .map(|(t, cols)| {
            let row = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            let name = t.replace('\'', "''");
            format!(
                "SELECT '{name}'::text, count(*)::bigint, coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '')
                 FROM (SELECT ROW({row})::text AS r FROM {table}) s",
                table = quote(t),
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.into_iter().map(|(t, n, h)| (t, (n, h))).collect()
}

fn changed_tables(
    before: &BTreeMap<String, (i64, String)>,
    after: &BTreeMap<String, (i64, String)>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(t, v)| before.get(*t) != Some(v))
        .map(|(t, (n, _))| format!("{t} (now {n} rows)"))
        .collect()
}

/// Sends `body` with a content-length it never delivers, then stops writing.
async fn send_truncated_stream(app: &TestApp, p: &Prepared, token: Option<&str>) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = p.body.clone().unwrap_or_default();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        p.method,
        p.path,
        body.len() * 2 + 10
    );
    if let Some(ct) = &p.content_type {
        head.push_str(&format!("content-type: {ct}\r\n"));
    }
    if let Some(t) = token {
        head.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// What went wrong with one case, or None when the server refused it properly.
async fn check(app: &TestApp, p: &Prepared, tokens: &BTreeMap<&str, String>) -> Option<String> {
    let token = match p.who {
        Who::Admin => Some(ADMIN_TOKEN),
        Who::User => Some(tokens["user"].as_str()),
        Who::Agent => Some(tokens["agent"].as_str()),
        Who::None => None,
    };
    if p.truncated_stream {
        // The body never arrives in full: the server must answer 4xx (or close without a
        // 2xx/5xx); whatever it answered is checked below by the fingerprint too.
        let raw = send_truncated_stream(app, p, token).await;
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok());
        return match status {
            None => Some(format!("no HTTP answer: {}", short(&raw))),
            Some(s) if (400..500).contains(&s) && raw.contains("application/problem+json") => None,
            Some(s) => Some(format!("status {s}: {}", short(&raw))),
        };
    }
    let mut r = app.request(p.method.clone(), &p.path, token);
    if let Some(ct) = &p.content_type {
        r = r.header("content-type", ct);
    }
    if let Some(b) = &p.body {
        r = r.body(b.clone());
    }
    let resp = match r.timeout(Duration::from_secs(20)).send().await {
        Ok(resp) => resp,
        Err(e) => return Some(format!("no answer: {e}")),
    };
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    let status_ok = match &p.expect {
        Expect::Status(s) => status.as_u16() == *s,
        Expect::Class(c) if c == "4xx" => status.is_client_error(),
        Expect::Class(c) => panic!("{}/{}: unknown expectation `{c}`", p.group, p.name),
    };
    let mut wrong = Vec::new();
    if !status_ok {
        wrong.push(format!("status {status} (want {:?})", p.expect));
    }
    if ct != "application/problem+json" {
        wrong.push(format!("content-type `{ct}`"));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v)
            if v["detail"].as_str().is_some_and(|d| !d.trim().is_empty())
                && v["status"] == status.as_u16() => {}
        _ => wrong.push("no problem document with a detail".into()),
    }
    (!wrong.is_empty()).then(|| format!("{}: {}", wrong.join(", "), short(&text)))
}

/// The state every case runs against; returns the template variables and the tokens.
async fn seed(app: &TestApp) -> (Ids, BTreeMap<&'static str, String>) {
    let (_, user) = app.create_key("user").await;
    let table_device = crate::seed_table(app, "bench-phone", "wgpu-direct", 1.0).await;
    let r = app
        .post_json(
            "/v1/devices",
            Some(ADMIN_TOKEN),
            &json!({"name": "import-phone", "labels": ["imports"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let manual_device = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (agent, agent_device) = crate::agents::enroll(app, "corpus-phone").await;
    let r = app
        .post_json(
            "/v1/enrollment-tokens",
            Some(ADMIN_TOKEN),
            &json!({"label": "corpus", "max_uses": 5}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let enroll_token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": agent_device, "frameworks": ["wgpu-direct"],
                    "blocks": ["conv-i224x224x3-o112x112x16-k3-s2-hswish",
                               "gap-i7x7x960"],
                    "batch_size": 2, "protocol": {"min_runs": 5, "max_runs": 10}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let campaign = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post_json("/v1/agents/jobs/claim", Some(&agent), &json!({"wait_s": 0}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let job: Value = r.json().await.unwrap();
    // The lease must outlive the run, so every upload case meets a held lease and reaches the
    // checks it is about.
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE jobs SET lease_expires_at = now() + interval '1 day' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(job["id"].as_str().unwrap()).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    let vars = BTreeMap::from([
        ("job", job["id"].as_str().unwrap().to_string()),
        ("lease", job["lease_id"].as_str().unwrap().to_string()),
        ("attempt", job["attempt"].to_string()),
        ("table_device", table_device),
        ("manual_device", manual_device),
        ("agent_device", agent_device),
        ("campaign", campaign),
        ("enroll_token", enroll_token),
        ("missing_uuid", uuid::Uuid::new_v4().to_string()),
    ]);
    (
        Ids { vars },
        BTreeMap::from([("user", user), ("agent", agent)]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_is_refused_without_writes() {
    let started = Instant::now();
    let files = corpus_files();
    assert!(!files.is_empty(), "the corpus has files");
    let hostile: Vec<Hostile> = {
        let path = corpus_dir().join(HOSTILE_FILE);
        let text = std::fs::read_to_string(&path).expect("the hostile strings file");
        serde_json::from_str::<HostileFile>(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .strings
    };
    assert!(hostile.len() >= 10);
    let mut corpus = Vec::new();
    for path in &files {
        if path.file_name().unwrap() == HOSTILE_FILE {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let file: CorpusFile = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("corpus file {} does not parse: {e}", path.display()));
        assert!(!file.cases.is_empty(), "{} has no cases", path.display());
        corpus.push(file);
    }

    let app = spawn_app().await;
    let (ids, tokens) = seed(&app).await;
    let mut prepared = Vec::new();
    for file in &corpus {
        for case in &file.cases {
            prepared.extend(prepare(&file.group, case, &ids, &hostile));
        }
    }
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let mut before = fingerprint(&mut conn).await;
    let mut failures = Vec::new();
    let mut by_group: BTreeMap<String, usize> = BTreeMap::new();
    for p in &prepared {
        *by_group.entry(p.group.clone()).or_default() += 1;
    }
    // Cases run in small concurrent batches with a fingerprint after each batch: a refused
    // request writes nothing, so an unchanged database clears the whole batch, and a changed
    // one names the batch (its cases that were not refused are listed above it).
    let (app, prepared, tokens) = (Arc::new(app), Arc::new(prepared), Arc::new(tokens));
    let indices: Vec<usize> = (0..prepared.len()).collect();
    for batch in indices.chunks(BATCH) {
        let mut set = tokio::task::JoinSet::new();
        for &i in batch {
            let (app, prepared, tokens) = (app.clone(), prepared.clone(), tokens.clone());
            set.spawn(async move { (i, check(&app, &prepared[i], &tokens).await) });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.expect("a case's task panicked"));
        }
        results.sort_by_key(|(i, _)| *i);
        for (i, wrong) in results {
            if let Some(w) = wrong {
                let p = &prepared[i];
                failures.push(format!(
                    "{}/{} ({} {}): {w}",
                    p.group,
                    p.name,
                    p.method,
                    short(&p.path)
                ));
            }
        }
        let after = fingerprint(&mut conn).await;
        let changed = changed_tables(&before, &after);
        if !changed.is_empty() {
            let names: Vec<String> = batch
                .iter()
                .map(|&i| format!("{}/{}", prepared[i].group, prepared[i].name))
                .collect();
            failures.push(format!(
                "one of [{}] wrote to {}",
                names.join("; "),
                changed.join(", ")
            ));
            before = after;
        }
    }
    println!(
        "bad-input corpus: {} cases from {} files in {:.1}s, {} failures; by group: {by_group:?}",
        prepared.len(),
        files.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if let Ok(dir) = std::env::var("GPULUT_PROOF_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        let out =
            json!({"cases": prepared.len(), "failures": failures.len(), "by_group": by_group});
        std::fs::write(
            Path::new(&dir).join("bad_input.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases were not refused cleanly:\n{}",
        failures.len(),
        prepared.len(),
        failures.join("\n")
    );
}
