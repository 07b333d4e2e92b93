//! The timing protocol of DESIGN.md section 4, behind `gpulut-agent bench` (and later the
//! job runner): verify every block against the CPU reference, then time the verified ones.
//!
//! 1. Every (block or architecture, framework) pair is lowered, its pipelines built and
//!    weights uploaded, and its output on a seeded random input compared with
//!    [`crate::reference`]. A pair that does not match is reported as failed and never timed.
//! 2. Warm-up: each pair runs until it has `warmup_runs` runs and `warmup_min_ms` of them.
//! 3. Timing: rounds over the pairs still running, in a freshly shuffled (seeded) order each
//!    round, one run per pair per round, so drift and heat spread over all pairs. A pair
//!    stops once it has `min_runs` samples and the 95% CI of its median is within
//!    `target_relative_ci`, or at `max_runs`, or after `max_seconds` of its own runs.
//! 4. Each run is one submission of all the pair's dispatches; with GPU timestamps (pass
//!    begin/end) where the adapter has them. A timestamp difference of 0 or above the
//!    submit-to-done wall time turns timestamps off for the rest of the session, and every
//!    pair then reports its wall-clock samples, which are always kept.

use gpulut_tables::arch::ArchSpec;
use gpulut_tables::block::{Activation, Block};
use gpulut_tables::wire::{
    BlockMeasurement, DeviceState, MeasuredKind, StopReason, TimerKind, TimingProtocol,
};
use gpulut_tables::{ArchError, SearchSpace, Summary};

use crate::adapter::{Adapter, KernelAdapter, Model};
use crate::framework::Framework;
use crate::gpu::Gpu;
use crate::model::{Network, Op, Rng};
use crate::reference::{self, Comparison, TOLERANCE};
use crate::thermal;

/// The protocol's defaults (DESIGN.md section 4), as the server's campaigns use them.
pub fn default_protocol() -> TimingProtocol {
    TimingProtocol::default()
}

/// A deliberate fault in what the GPU computes, so tests can prove verification catches a
/// wrong kernel: the GPU gets a network that differs from the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Every bias of the last op with weights is shifted by 1.
    PerturbWeights,
    /// The first activation swaps ReLU and h-swish, as a kernel applying the wrong one would.
    WrongActivation,
}

impl Fault {
    /// The network the faulty GPU side computes.
    pub fn apply(self, net: &Network) -> Network {
        let mut net = net.clone();
        match self {
            Self::PerturbWeights => {
                if let Some(bias) = net.nodes.iter_mut().rev().find_map(|n| match &mut n.op {
                    Op::Conv(c) => Some(&mut c.bias),
                    Op::Depthwise(d) => Some(&mut d.bias),
                    Op::FullyConnected(f) => Some(&mut f.bias),
                    Op::SqueezeExcite(s) => Some(&mut s.expand_bias),
                    Op::GlobalAvgPool | Op::Add { .. } => None,
                }) {
                    bias.iter_mut().for_each(|b| *b += 1.0);
                }
            }
            Self::WrongActivation => {
                let swap = |a: &mut Activation| match a {
                    Activation::Relu => *a = Activation::Hswish,
                    Activation::Hswish => *a = Activation::Relu,
                    Activation::None | Activation::Hsigmoid => {}
                };
                if let Some(act) = net.nodes.iter_mut().find_map(|n| match &mut n.op {
                    Op::Conv(c) if matches!(c.act, Activation::Relu | Activation::Hswish) => {
                        Some(&mut c.act)
                    }
                    Op::Depthwise(d) if matches!(d.act, Activation::Relu | Activation::Hswish) => {
                        Some(&mut d.act)
                    }
                    _ => None,
                }) {
                    swap(act);
                }
            }
        }
        net
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub protocol: TimingProtocol,
    /// Test hook: make the GPU compute something else than the reference.
    pub fault: Option<Fault>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            protocol: default_protocol(),
            fault: None,
        }
    }
}

/// Why the things to bench could not be named.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown search space `{name}` (built in: {})", known.join(", "))]
    UnknownSpace { name: String, known: Vec<String> },
    #[error(
        "`{key}` is not a block of space `{space}`; `gpulut-agent bench --space {space} --json` lists its blocks"
    )]
    UnknownBlock { key: String, space: String },
    #[error(transparent)]
    Arch(#[from] ArchError),
    #[error("`{text}` is not an architecture in JSON form: {reason}")]
    ArchJson { text: String, reason: String },
}

/// One thing to measure: a block, or a whole architecture as its blocks chained.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: String,
    pub kind: MeasuredKind,
    pub name: Option<String>,
    pub blocks: Vec<Block>,
}

/// A built-in space by name.
pub fn space(name: &str) -> Result<SearchSpace, BenchError> {
    SearchSpace::builtin(name).ok_or_else(|| BenchError::UnknownSpace {
        name: name.to_owned(),
        known: SearchSpace::builtins()
            .iter()
            .map(|s| s.name().to_owned())
            .collect(),
    })
}

/// Every distinct block of the space: stem, choice blocks at every layer shape, head.
pub fn space_items(space: &SearchSpace) -> Vec<Item> {
    space
        .distinct_blocks()
        .into_iter()
        .map(|b| Item {
            key: b.block.key.to_string(),
            kind: MeasuredKind::Block,
            name: None,
            blocks: vec![b.block],
        })
        .collect()
}

/// A block by key: any distinct block of the space, or a block of one of its reference
/// networks (MobileNetV3-Large's blocks are outside the choice grid).
pub fn block_item(space: &SearchSpace, key: &str) -> Result<Item, BenchError> {
    let key = key.trim();
    let from_space = space
        .distinct_blocks()
        .into_iter()
        .map(|b| b.block)
        .find(|b| b.key.as_str() == key);
    let found = from_space.or_else(|| {
        space.references().names().iter().find_map(|name| {
            let arch = space.references().get(space, name)?;
            space
                .expand(&arch)
                .into_iter()
                .find(|b| b.key.as_str() == key)
        })
    });
    found
        .map(|block| Item {
            key: block.key.to_string(),
            kind: MeasuredKind::Block,
            name: None,
            blocks: vec![block],
        })
        .ok_or_else(|| BenchError::UnknownBlock {
            key: key.to_owned(),
            space: space.name().to_owned(),
        })
}

/// An architecture in any accepted form: hex text, a reference name, or the JSON form.
pub fn arch_item(space: &SearchSpace, text: &str) -> Result<Item, BenchError> {
    let text = text.trim();
    let spec = if text.starts_with('{') {
        serde_json::from_str::<ArchSpec>(text).map_err(|e| BenchError::ArchJson {
            text: text.to_owned(),
            reason: e.to_string(),
        })?
    } else {
        ArchSpec::Text(text.to_owned())
    };
    let arch = space.resolve(&spec)?;
    Ok(Item {
        key: arch.to_string(),
        kind: MeasuredKind::Arch,
        name: arch.name().map(str::to_owned),
        blocks: space.expand(&arch),
    })
}

/// Every distinct block of an architecture, in execution order, each as its own item.
pub fn arch_block_items(space: &SearchSpace, text: &str) -> Result<Vec<Item>, BenchError> {
    let arch = arch_item(space, text)?;
    let mut items: Vec<Item> = Vec::new();
    for block in arch.blocks {
        if items.iter().all(|i| i.key != block.key.as_str()) {
            items.push(Item {
                key: block.key.to_string(),
                kind: MeasuredKind::Block,
                name: None,
                blocks: vec![block],
            });
        }
    }
    Ok(items)
}

/// Where a run is, for a progress display.
pub trait Progress {
    /// A new stage with `total` steps.
    fn stage(&mut self, _name: &str, _total: u64) {}
    /// One step of the stage done.
    fn step(&mut self, _what: &str) {}
    fn finish(&mut self) {}
}

/// No display.
pub struct Silent;

impl Progress for Silent {}

/// What a bench run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub results: Vec<BlockMeasurement>,
    /// Whether GPU timestamps stayed consistent with the wall clock; None when not used.
    pub timestamps_valid: Option<bool>,
}

struct Series<'a> {
    result: BlockMeasurement,
    /// The built model while it is still to be timed.
    program: Option<Box<dyn Model + 'a>>,
    /// Whether the runtime times itself in one batch (external adapters).
    batch: bool,
    /// The reference output, kept for batch-timed runtimes to check their output after timing.
    expected: Vec<f32>,
    gpu: Vec<f64>,
    wall: Vec<f64>,
    warm_runs: u32,
    warm_ms: f64,
    timed_ms: f64,
    done: bool,
}

impl Series<'_> {
    fn live(&self) -> bool {
        self.program.is_some() && !self.done && !self.batch
    }

    fn warm(&self, p: &TimingProtocol) -> bool {
        self.warm_runs >= p.warmup_runs && self.warm_ms >= p.warmup_min_ms
    }

    fn fail(&mut self, error: String) {
        self.result.error = Some(error);
        self.program = None;
        self.gpu.clear();
        self.wall.clear();
    }
}

fn blank(item: &Item, framework: &dyn Adapter, net: Option<&Network>) -> BlockMeasurement {
    BlockMeasurement {
        key: item.key.clone(),
        kind: item.kind,
        name: item.name.clone(),
        framework: framework.name().to_owned(),
        framework_version: framework.version().to_owned(),
        verified: false,
        max_relative_error: None,
        tolerance: TOLERANCE,
        error: None,
        median_ms: None,
        samples: Vec::new(),
        timer: None,
        wall_samples: Vec::new(),
        warmup_runs: 0,
        stopped_by: None,
        pipeline_ms: 0.0,
        dispatches: 0,
        flops: net.map_or(0, Network::flops),
        bytes: net.map_or(0, Network::bytes),
        state_start: None,
        state_end: None,
    }
}

/// Verifies and times every item with every one of our kernel sets.
pub fn run(
    gpu: &Gpu,
    items: &[Item],
    frameworks: &[Framework],
    options: &Options,
    progress: &mut dyn Progress,
) -> Outcome {
    let kernels: Vec<KernelAdapter> = frameworks.iter().map(|&f| KernelAdapter(f)).collect();
    let adapters: Vec<&dyn Adapter> = kernels.iter().map(|k| k as &dyn Adapter).collect();
    run_adapters(gpu, items, &adapters, options, progress)
}

/// Verifies and times every item with every adapter: the ones timed run by run in
/// interleaved rounds, then the batch-timed ones (external runtimes) item by item.
pub fn run_adapters(
    gpu: &Gpu,
    items: &[Item],
    frameworks: &[&dyn Adapter],
    options: &Options,
    progress: &mut dyn Progress,
) -> Outcome {
    let p = &options.protocol;
    let mut series = verify_all(gpu, items, frameworks, options, progress);

    let use_timestamps = p.gpu_timestamps && gpu.has_timestamps();
    let mut timestamps_ok = use_timestamps;
    let mut rng = Rng::new(p.seed ^ 0x5EED_0F0D_E5E5);

    // Warm-up, interleaved like the timed rounds.
    let live_count = series.iter().filter(|s| s.live()).count() as u64;
    progress.stage("warm-up", live_count);
    loop {
        let mut order: Vec<usize> = (0..series.len())
            .filter(|&i| series[i].live() && !series[i].warm(p))
            .collect();
        if order.is_empty() {
            break;
        }
        rng.shuffle(&mut order);
        for i in order {
            let s = &mut series[i];
            let Some(program) = &mut s.program else {
                continue;
            };
            match program
                .run_once(timestamps_ok)
                .unwrap_or_else(|| Err("not timed run by run".into()))
            {
                Ok(t) => {
                    if timestamps_ok && !plausible(t.gpu_ms, t.wall_ms) {
                        timestamps_ok = false;
                    }
                    s.warm_runs += 1;
                    s.warm_ms += t.wall_ms;
                    if s.warm(p) {
                        progress.step(&s.result.key);
                    }
                }
                Err(e) => {
                    s.fail(format!("warm-up run failed: {e}"));
                    progress.step(&s.result.key);
                }
            }
        }
    }

    progress.stage("timing", live_count);
    for s in series.iter_mut().filter(|s| s.live()) {
        s.result.state_start = Some(state());
    }
    loop {
        let mut order: Vec<usize> = (0..series.len()).filter(|&i| series[i].live()).collect();
        if order.is_empty() {
            break;
        }
        rng.shuffle(&mut order);
        for i in order {
            let s = &mut series[i];
            let Some(program) = &mut s.program else {
                continue;
            };
            match program
                .run_once(timestamps_ok)
                .unwrap_or_else(|| Err("not timed run by run".into()))
            {
                Ok(t) => {
                    if timestamps_ok && !plausible(t.gpu_ms, t.wall_ms) {
                        timestamps_ok = false;
                    }
                    s.wall.push(t.wall_ms);
                    if let Some(g) = t.gpu_ms {
                        s.gpu.push(g);
                    }
                    s.timed_ms += t.wall_ms;
                    let current = if timestamps_ok && s.gpu.len() == s.wall.len() {
                        &s.gpu
                    } else {
                        &s.wall
                    };
                    if let Some(reason) = stop_reason(current, s.timed_ms, p) {
                        s.done = true;
                        s.result.stopped_by = Some(reason);
                        s.result.state_end = Some(state());
                        progress.step(&s.result.key);
                    }
                }
                Err(e) => {
                    s.fail(format!("timed run failed: {e}"));
                    progress.step(&s.result.key);
                }
            }
        }
    }
    time_batches(&mut series, p, progress);
    progress.finish();

    let results = series
        .into_iter()
        .map(|s| finish(s, timestamps_ok, p))
        .collect();
    Outcome {
        results,
        timestamps_valid: use_timestamps.then_some(timestamps_ok),
    }
}

/// Builds, uploads and verifies every pair; the ones that match keep their program.
fn verify_all<'a>(
    gpu: &'a Gpu,
    items: &[Item],
    frameworks: &[&'a dyn Adapter],
    options: &Options,
    progress: &mut dyn Progress,
) -> Vec<Series<'a>> {
    let seed = options.protocol.seed;
    let mut series = Vec::with_capacity(items.len() * frameworks.len());
    progress.stage("verify", (items.len() * frameworks.len()) as u64);
    for item in items {
        let prepared = Network::from_blocks(&item.blocks, seed)
            .map_err(|e| format!("cannot build the network: {e}"))
            .and_then(|net| {
                let input = net.random_input(seed);
                let expected = reference::run(&net, &input)
                    .map_err(|e| format!("the CPU reference failed: {e}"))?;
                Ok((net, input, expected))
            });
        for &framework in frameworks {
            let net = prepared.as_ref().ok().map(|(n, _, _)| n);
            let mut s = Series {
                result: blank(item, framework, net),
                program: None,
                batch: false,
                expected: Vec::new(),
                gpu: Vec::new(),
                wall: Vec::new(),
                warm_runs: 0,
                warm_ms: 0.0,
                timed_ms: 0.0,
                done: false,
            };
            match &prepared {
                Ok((net, input, expected)) => {
                    verify_one(gpu, net, framework, input, expected, options.fault, &mut s);
                }
                Err(e) => s.result.error = Some(e.clone()),
            }
            progress.step(&item.key);
            series.push(s);
        }
    }
    series
}

fn verify_one<'a>(
    gpu: &'a Gpu,
    net: &Network,
    framework: &'a dyn Adapter,
    input: &[f32],
    expected: &[f32],
    fault: Option<Fault>,
    s: &mut Series<'a>,
) {
    let gpu_net = fault.map(|f| f.apply(net));
    let mut program = match framework.prepare(gpu, gpu_net.as_ref().unwrap_or(net), input) {
        Ok(p) => p,
        Err(e) => {
            s.result.error = Some(e);
            return;
        }
    };
    let output = program.output();
    s.result.pipeline_ms = program.pipeline_ms();
    s.result.dispatches = program.dispatches();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            s.result.error = Some(e);
            return;
        }
    };
    let cmp = Comparison::of(&output, expected);
    s.result.max_relative_error = Some(cmp.relative_error).filter(|e| e.is_finite());
    s.result.verified = cmp.passes();
    if s.result.verified {
        s.batch = program.batch_timed();
        if s.batch {
            s.expected = expected.to_vec();
        }
        s.program = Some(program);
    } else {
        s.result.error = Some(format!(
            "output differs from the CPU reference: max |error| {:.3e} against an output scale of {:.3e} (relative {:.3e} > tolerance {:.0e}); not timed",
            cmp.max_abs_error, cmp.scale, cmp.relative_error, TOLERANCE
        ));
    }
}

/// Times the batch-timed pairs one after the other, each with the whole protocol; a pair whose
/// output after timing no longer matches the reference loses its samples.
fn time_batches(series: &mut [Series<'_>], p: &TimingProtocol, progress: &mut dyn Progress) {
    let pending: Vec<usize> = (0..series.len())
        .filter(|&i| series[i].batch && series[i].program.is_some() && !series[i].done)
        .collect();
    if pending.is_empty() {
        return;
    }
    progress.stage("external", pending.len() as u64);
    for i in pending {
        let s = &mut series[i];
        let Some(program) = &mut s.program else {
            continue;
        };
        s.result.state_start = Some(state());
        let batch = program.run_batch(p);
        s.result.state_end = Some(state());
        match batch {
            Ok(b) => {
                let cmp = Comparison::of(&b.output, &s.expected);
                if !cmp.passes() {
                    s.result.verified = false;
                    s.result.max_relative_error =
                        Some(cmp.relative_error).filter(|e| e.is_finite());
                    s.fail(format!(
                        "output after timing differs from the CPU reference (relative {:.3e} > tolerance {:.0e}); samples dropped",
                        cmp.relative_error, TOLERANCE
                    ));
                } else if b.samples.is_empty() && p.max_runs > 0 {
                    s.fail("the adapter returned no samples".into());
                } else {
                    s.warm_runs = b.warmup_runs;
                    s.timed_ms = b.samples.iter().sum();
                    s.result.stopped_by = b.stopped_by;
                    s.wall = b.samples;
                    s.done = true;
                }
            }
            Err(e) => s.fail(format!("timed runs failed: {e}")),
        }
        s.program = None;
        progress.step(&s.result.key);
    }
}

/// A GPU interval that can be true: positive, finite, and within the wall time around it.
fn plausible(gpu_ms: Option<f64>, wall_ms: f64) -> bool {
    gpu_ms.is_some_and(|g| g.is_finite() && g > 0.0 && g <= wall_ms)
}

fn stop_reason(samples: &[f64], timed_ms: f64, p: &TimingProtocol) -> Option<StopReason> {
    let n = samples.len() as u32;
    if n >= p.max_runs.max(1) {
        return Some(StopReason::MaxRuns);
    }
    if timed_ms >= p.max_seconds * 1e3 {
        return Some(StopReason::MaxSeconds);
    }
    if n >= p.min_runs {
        let converged = Summary::from_samples(samples)
            .ok()
            .and_then(|s| s.relative_ci_half_width())
            .is_some_and(|w| w <= p.target_relative_ci);
        if converged {
            return Some(StopReason::Converged);
        }
    }
    None
}

fn state() -> DeviceState {
    thermal::read()
}

fn finish(s: Series, timestamps_ok: bool, p: &TimingProtocol) -> BlockMeasurement {
    let mut r = s.result;
    r.warmup_runs = s.warm_runs;
    if s.wall.is_empty() {
        return r;
    }
    let gpu_ok = timestamps_ok && s.gpu.len() == s.wall.len();
    let (samples, timer) = if gpu_ok {
        (s.gpu, TimerKind::GpuTimestamp)
    } else {
        (s.wall.clone(), TimerKind::Wall)
    };
    r.median_ms = Summary::from_samples(&samples).ok().map(|x| x.median);
    r.samples = samples;
    r.timer = Some(timer);
    if gpu_ok {
        r.wall_samples = s.wall;
    }
    if r.stopped_by.is_none() {
        r.stopped_by = Some(if s.timed_ms >= p.max_seconds * 1e3 {
            StopReason::MaxSeconds
        } else {
            StopReason::MaxRuns
        });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol() -> TimingProtocol {
        TimingProtocol {
            min_runs: 5,
            max_runs: 50,
            max_seconds: 1.0,
            ..default_protocol()
        }
    }

    #[test]
    fn stops_on_a_tight_ci_after_min_runs() {
        let p = protocol();
        let flat = vec![10.0; 4];
        assert_eq!(stop_reason(&flat, 40.0, &p), None, "fewer than min_runs");
        let flat = vec![10.0; 6];
        assert_eq!(stop_reason(&flat, 60.0, &p), Some(StopReason::Converged));
        let noisy: Vec<f64> = (0..10)
            .map(|i| if i % 2 == 0 { 5.0 } else { 15.0 })
            .collect();
        assert_eq!(stop_reason(&noisy, 100.0, &p), None);
        assert_eq!(
            stop_reason(&noisy, 1000.0, &p),
            Some(StopReason::MaxSeconds)
        );
        let many: Vec<f64> = (0..50).map(|i| f64::from(i % 7)).collect();
        assert_eq!(stop_reason(&many, 100.0, &p), Some(StopReason::MaxRuns));
    }

    #[test]
    fn timestamps_are_checked_against_the_wall_clock() {
        assert!(plausible(Some(1.0), 2.0));
        assert!(!plausible(Some(0.0), 2.0));
        assert!(!plausible(Some(3.0), 2.0));
        assert!(!plausible(Some(f64::NAN), 2.0));
        assert!(!plausible(None, 2.0));
    }

    #[test]
    fn items_resolve_keys_names_and_json() {
        let space = space("moga-mbv3").unwrap();
        assert_eq!(space_items(&space).len(), 126);
        let a = arch_item(&space, "MoGA-A").unwrap();
        assert_eq!(a.key, "453969358533aa");
        assert_eq!(a.name.as_deref(), Some("MoGA-A"));
        assert_eq!(a.blocks.len(), 2 + 14 + 4);
        let j = arch_item(&space, r#"{"choices": [4,5,3,9,6,9,3,5,8,5,3,3,10,10]}"#).unwrap();
        assert_eq!(j.key, a.key);
        let parts = arch_block_items(&space, "MoGA-A").unwrap();
        // MoGA-A repeats one block (layers 13 and 14).
        assert_eq!(parts.len(), 19);
        assert_eq!(parts[0].key, "conv-i224x224x3-o112x112x16-k3-s2-hswish");
        let m = arch_item(&space, "MobileNetV3-Large").unwrap();
        // A block only MobileNetV3 has is still found by key.
        let only_mbv3 = &m.blocks[3];
        let b = block_item(&space, only_mbv3.key.as_str()).unwrap();
        assert_eq!(b.blocks[0], *only_mbv3);
        assert!(matches!(
            block_item(&space, "conv-nonsense"),
            Err(BenchError::UnknownBlock { .. })
        ));
        assert!(matches!(arch_item(&space, "xyz"), Err(BenchError::Arch(_))));
        assert!(matches!(
            arch_item(&space, "{nope"),
            Err(BenchError::ArchJson { .. })
        ));
        assert!(matches!(
            super::space("nope"),
            Err(BenchError::UnknownSpace { .. })
        ));
    }

    #[test]
    fn faults_change_what_the_gpu_computes() {
        let space = space("moga-mbv3").unwrap();
        let item = arch_item(&space, "MoGA-C").unwrap();
        let net = Network::from_blocks(&item.blocks[..3], 1).unwrap();
        let input = net.random_input(1);
        let good = reference::run(&net, &input).unwrap();
        for fault in [Fault::PerturbWeights, Fault::WrongActivation] {
            let bad = reference::run(&fault.apply(&net), &input).unwrap();
            assert!(!Comparison::of(&bad, &good).passes(), "{fault:?}");
        }
    }
}
