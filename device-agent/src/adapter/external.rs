//! External adapters: runtimes behind the subprocess protocol of `ADAPTERS.md`.
//!
//! An adapter is a manifest, `NAME.adapter.json`, in an adapters directory:
//!
//! ```json
//! { "frameworks": ["ncnn-vulkan", "ncnn-cpu"],
//!   "command": ["{python}", "{dir}/ncnn_adapter.py"],
//!   "install": "pip install -r {dir}/requirements.txt" }
//! ```
//!
//! `{dir}` is the manifest's directory and `{python}` the interpreter (`GPULUT_PYTHON`, else
//! `python3`). Directories: `GPULUT_ADAPTERS_DIR` (a path list) when set, else the first of
//! `adapters/` next to the agent's executable, `../share/gpulut-agent/adapters/` from it, and
//! a source tree's `device-agent/adapters/` above a cargo target directory.
//!
//! Each request starts the command once, writes one JSON document to its stdin and reads one
//! from its stdout; tensors travel as raw little-endian f32 files in a temp directory the
//! request names. Plain `std::process`, so the agent builds for Android unchanged.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gpulut_tables::block::{Activation, Shape};
use gpulut_tables::protocol::FrameworkSupport;
use gpulut_tables::wire::{StopReason, TimingProtocol};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Adapter, Batch, Model};
use crate::gpu::{Gpu, RunTime};
use crate::model::{Network, Op};

/// How long a probe may take before the framework counts as unavailable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The manifest file suffix.
pub const MANIFEST_SUFFIX: &str = ".adapter.json";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    frameworks: Vec<String>,
    command: Vec<String>,
    #[serde(default)]
    install: Option<String>,
}

/// One framework of an external adapter, as probed.
#[derive(Debug, Clone)]
pub struct External {
    command: Vec<String>,
    support: FrameworkSupport,
}

/// The interpreter `{python}` stands for.
pub fn python() -> String {
    std::env::var("GPULUT_PYTHON")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// The directories searched for manifests.
pub fn adapter_dirs() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("GPULUT_ADAPTERS_DIR").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list).collect();
    }
    let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    let candidates = [
        exe_dir.join("adapters"),
        exe_dir.join("../share/gpulut-agent/adapters"),
        // target/{debug,release}/ and target/TRIPLE/{debug,release}/ in a source tree
        exe_dir.join("../../device-agent/adapters"),
        exe_dir.join("../../../device-agent/adapters"),
    ];
    candidates
        .into_iter()
        .find(|d| d.is_dir())
        .into_iter()
        .collect()
}

/// Every framework of every manifest in [`adapter_dirs`], probed in parallel.
pub fn discover() -> Vec<External> {
    let mut manifests = Vec::new();
    for dir in adapter_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(MANIFEST_SUFFIX))
            })
            .collect();
        paths.sort();
        manifests.extend(paths);
    }
    let handles: Vec<_> = manifests
        .into_iter()
        .map(|path| std::thread::spawn(move || load(&path)))
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect()
}

fn expand(word: &str, dir: &Path) -> String {
    word.replace("{dir}", &dir.to_string_lossy())
        .replace("{python}", &python())
}

/// Reads and probes one manifest; a broken manifest gives no frameworks but a warning.
fn load(path: &Path) -> Vec<External> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let manifest: Manifest = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(manifest = %path.display(), error = %e, "adapter manifest ignored");
            return Vec::new();
        }
    };
    let command: Vec<String> = manifest.command.iter().map(|w| expand(w, dir)).collect();
    let install = manifest.install.as_deref().map(|i| expand(i, dir));
    let unavailable = |name: &str, why: String| External {
        command: command.clone(),
        support: FrameworkSupport {
            name: name.to_owned(),
            version: String::new(),
            available: false,
            detail: Some(match &install {
                Some(i) => format!("{why}; to install: {i}"),
                None => why,
            }),
        },
    };
    let reply = if command.is_empty() {
        Err("the manifest's command is empty".to_owned())
    } else {
        call(&command, &json!({"request": "probe"}), PROBE_TIMEOUT, None)
    };
    let probed: Vec<FrameworkSupport> = match reply.and_then(|r| {
        serde_json::from_value::<Vec<FrameworkSupport>>(r["frameworks"].clone())
            .map_err(|e| format!("the adapter's probe reply is malformed: {e}"))
    }) {
        Ok(list) => list,
        Err(e) => {
            return manifest
                .frameworks
                .iter()
                .map(|n| unavailable(n, e.clone()))
                .collect();
        }
    };
    manifest
        .frameworks
        .iter()
        .map(|name| match probed.iter().find(|s| &s.name == name) {
            Some(s) if s.available => External {
                command: command.clone(),
                support: s.clone(),
            },
            Some(s) => unavailable(
                name,
                s.detail
                    .clone()
                    .unwrap_or_else(|| "the adapter says it is unavailable".into()),
            ),
            None => unavailable(name, "the adapter's probe does not report it".into()),
        })
        .collect()
}

/// Starts `command`, writes `request` to its stdin, and returns its one JSON reply, or the
/// reason there is none (cannot start, timeout, bad exit, `ok: false`).
pub fn call(
    command: &[String],
    request: &Value,
    timeout: Duration,
    workdir: Option<&Path>,
) -> Result<Value, String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "empty adapter command".to_owned())?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = workdir {
        cmd.env("GPULUT_ADAPTER_WORKDIR", d);
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start `{program}`: {e}{}",
            if program.contains("python") {
                " (set GPULUT_PYTHON to a Python 3 interpreter)"
            } else {
                ""
            }
        )
    })?;
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&body);
        }
        drop(stdin);
    });
    let mut stdout = child.stdout.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the adapter `{}` did not answer within {} s",
                    command.join(" "),
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("cannot wait for the adapter: {e}")),
        }
    };
    let _ = writer.join();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let tail = || {
        let text = String::from_utf8_lossy(&err);
        let text = text.trim();
        let start = text.len().saturating_sub(600);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    };
    let reply: Value = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(_) => {
            return Err(format!(
                "the adapter exited with {status} without a JSON reply; stderr: {}",
                tail()
            ));
        }
    };
    if reply["ok"] != Value::Bool(true) {
        return Err(format!(
            "the adapter reports: {}",
            reply["error"]
                .as_str()
                .unwrap_or("an error without a message")
        ));
    }
    if !status.success() {
        return Err(format!(
            "the adapter exited with {status}; stderr: {}",
            tail()
        ));
    }
    Ok(reply)
}

impl External {
    /// An adapter for tests and tools: `command` speaks the protocol for `support.name`.
    pub fn new(command: Vec<String>, support: FrameworkSupport) -> Self {
        Self { command, support }
    }
}

impl Adapter for External {
    fn name(&self) -> &str {
        &self.support.name
    }

    fn version(&self) -> &str {
        &self.support.version
    }

    fn support(&self) -> FrameworkSupport {
        self.support.clone()
    }

    fn prepare<'a>(
        &'a self,
        _gpu: &'a Gpu,
        net: &Network,
        input: &[f32],
    ) -> Result<Box<dyn Model + 'a>, String> {
        if !self.support.available {
            return Err(format!(
                "framework `{}` is not available: {}",
                self.support.name,
                self.support.detail.as_deref().unwrap_or("no reason given")
            ));
        }
        let dir = WorkDir::new().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let (model, weights) = graph(net);
        write_f32(&dir.0.join(WEIGHTS_FILE), &weights)
            .and_then(|()| write_f32(&dir.0.join(INPUT_FILE), input))
            .map_err(|e| format!("cannot write the model's files: {e}"))?;
        Ok(Box::new(ExternalModel {
            adapter: self,
            dir,
            model,
            build_ms: 0.0,
        }))
    }
}

const WEIGHTS_FILE: &str = "weights.bin";
const INPUT_FILE: &str = "input.bin";
const OUTPUT_FILE: &str = "output.bin";

struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gpulut-adapter-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_f32(path: &Path, values: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

fn read_f32(path: &Path) -> Result<Vec<f32>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the adapter's output: {e}"))?;
    if bytes.len() % 4 != 0 {
        return Err("the adapter's output file is not a whole number of f32".into());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn act_name(a: Activation) -> &'static str {
    match a {
        Activation::None => "none",
        Activation::Relu => "relu",
        Activation::Hswish => "hswish",
        Activation::Hsigmoid => "hsigmoid",
    }
}

fn shape(s: Shape) -> Value {
    json!([s.h, s.w, s.c])
}

/// The op list of `net` as the protocol's `model` object, and the weight file's values.
pub fn graph(net: &Network) -> (Value, Vec<f32>) {
    let mut weights: Vec<f32> = Vec::new();
    let mut tensor = |v: &[f32]| {
        let offset = weights.len();
        weights.extend_from_slice(v);
        json!({"offset": offset, "count": v.len()})
    };
    let nodes: Vec<Value> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut node = json!({
                "id": i + 1,
                "input": n.input,
                "in_shape": shape(n.in_shape),
                "out_shape": shape(n.out_shape),
            });
            let extra = match &n.op {
                Op::Conv(c) => json!({
                    "op": "conv", "kernel": c.kernel, "stride": c.stride, "padding": c.kernel / 2,
                    "cin": c.cin, "cout": c.cout, "act": act_name(c.act),
                    "weight": tensor(&c.weight), "bias": tensor(&c.bias),
                }),
                Op::Depthwise(d) => json!({
                    "op": "depthwise", "kernel": d.kernel, "stride": d.stride,
                    "padding": d.kernel / 2, "channels": d.channels, "act": act_name(d.act),
                    "weight": tensor(&d.weight), "bias": tensor(&d.bias),
                }),
                Op::SqueezeExcite(s) => json!({
                    "op": "squeeze_excite", "channels": s.channels, "squeeze": s.squeeze,
                    "act": act_name(s.act), "gate_act": "hsigmoid",
                    "reduce_weight": tensor(&s.reduce_weight),
                    "reduce_bias": tensor(&s.reduce_bias),
                    "expand_weight": tensor(&s.expand_weight),
                    "expand_bias": tensor(&s.expand_bias),
                }),
                Op::GlobalAvgPool => json!({"op": "global_avg_pool"}),
                Op::FullyConnected(f) => json!({
                    "op": "fully_connected", "cin": f.cin, "cout": f.cout,
                    "weight": tensor(&f.weight), "bias": tensor(&f.bias),
                }),
                Op::Add { other } => json!({"op": "add", "other": other}),
            };
            if let (Value::Object(node), Value::Object(extra)) = (&mut node, extra) {
                node.extend(extra);
            }
            node
        })
        .collect();
    let model = json!({
        "layout": "hwc",
        "dtype": "f32",
        "input_shape": shape(net.input),
        "output": net.output(),
        "output_shape": shape(net.output_shape()),
        "weights_file": WEIGHTS_FILE,
        "nodes": nodes,
    });
    (model, weights)
}

struct ExternalModel<'a> {
    adapter: &'a External,
    dir: WorkDir,
    model: Value,
    build_ms: f64,
}

#[derive(Deserialize)]
struct RunReply {
    #[serde(default)]
    build_ms: f64,
    #[serde(default)]
    warmup_runs: u32,
    #[serde(default)]
    samples_ms: Vec<f64>,
    #[serde(default)]
    stopped_by: Option<StopReason>,
}

impl ExternalModel<'_> {
    fn request(&mut self, protocol: &TimingProtocol) -> Result<(RunReply, Vec<f32>), String> {
        let _ = std::fs::remove_file(self.dir.0.join(OUTPUT_FILE));
        let request = json!({
            "request": "run",
            "framework": self.adapter.support.name,
            "dir": self.dir.0,
            "model": self.model,
            "input_file": INPUT_FILE,
            "output_file": OUTPUT_FILE,
            "protocol": {
                "warmup_runs": protocol.warmup_runs,
                "warmup_min_ms": protocol.warmup_min_ms,
                "min_runs": protocol.min_runs,
                "max_runs": protocol.max_runs,
                "max_seconds": protocol.max_seconds,
                "target_relative_ci": protocol.target_relative_ci,
            },
        });
        // Build time, warm-up and the timed runs' own budget, with room to spare.
        let timeout = Duration::from_secs_f64(
            std::env::var("GPULUT_ADAPTER_TIMEOUT_S")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(300.0 + 3.0 * protocol.max_seconds),
        );
        let reply = call(&self.adapter.command, &request, timeout, Some(&self.dir.0))?;
        let reply: RunReply = serde_json::from_value(reply)
            .map_err(|e| format!("the adapter's run reply is malformed: {e}"))?;
        if reply.samples_ms.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err("the adapter reported a negative or non-finite run time".into());
        }
        let output = read_f32(&self.dir.0.join(OUTPUT_FILE))?;
        Ok((reply, output))
    }
}

impl Model for ExternalModel<'_> {
    fn pipeline_ms(&self) -> f64 {
        self.build_ms
    }

    fn output(&mut self) -> Result<Vec<f32>, String> {
        // A run with no warm-up and no timed runs: build, one inference, the output.
        let none = TimingProtocol {
            warmup_runs: 0,
            warmup_min_ms: 0.0,
            min_runs: 0,
            max_runs: 0,
            ..TimingProtocol::default()
        };
        let (reply, output) = self.request(&none)?;
        self.build_ms = reply.build_ms;
        Ok(output)
    }

    fn batch_timed(&self) -> bool {
        true
    }

    fn run_once(&mut self, _timestamps: bool) -> Option<Result<RunTime, String>> {
        None
    }

    fn run_batch(&mut self, protocol: &TimingProtocol) -> Result<Batch, String> {
        let (reply, output) = self.request(protocol)?;
        Ok(Batch {
            samples: reply.samples_ms,
            warmup_runs: reply.warmup_runs,
            stopped_by: reply.stopped_by,
            output,
        })
    }
}
