//! Framework adapters: every runtime the agent measures with, behind one interface.
//!
//! An [`Adapter`] takes a network in the agent's own form ([`Network`]: the op list of a block
//! or a whole architecture with its seeded weights), builds the runtime's own model of it with
//! exactly those weights, and hands back a [`Model`] that gives its output on the seeded input
//! (checked against [`crate::reference`] before anything is timed) and runs under the timing
//! protocol of [`crate::bench`].
//!
//! - [`KernelAdapter`]: our WGSL kernel sets (`wgpu-direct`, `wgpu-fused`), in process; the
//!   agent times them run by run, interleaved with the other pairs.
//! - [`external::External`]: a runtime behind the subprocess protocol of `ADAPTERS.md` (JSON
//!   on stdin and stdout, tensors as raw f32 files); the shipped ones are `ncnn-vulkan`,
//!   `ncnn-cpu` and `onnxruntime-cpu`. They time themselves in one batch per item with the
//!   protocol's rule, and their output after timing is checked again.

pub mod external;

use std::sync::OnceLock;

use gpulut_tables::protocol::FrameworkSupport;
use gpulut_tables::wire::{StopReason, TimingProtocol};

use crate::framework::Framework;
use crate::gpu::{Gpu, Program, RunTime};
use crate::model::Network;

/// A runtime that can build, verify and time networks.
pub trait Adapter: Send + Sync {
    /// The framework's name in table terms (`wgpu-fused`, `ncnn-vulkan`, ...).
    fn name(&self) -> &str;
    /// The version its results are recorded with; empty when unavailable.
    fn version(&self) -> &str;
    /// Whether it can run here, and why not.
    fn support(&self) -> FrameworkSupport;
    /// Builds the runtime's model of `net`, ready to run on `input` (the seeded input the
    /// CPU reference also ran on).
    fn prepare<'a>(
        &'a self,
        gpu: &'a Gpu,
        net: &Network,
        input: &[f32],
    ) -> Result<Box<dyn Model + 'a>, String>;
}

/// What a batch-timed runtime measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Wall-clock milliseconds of each timed run.
    pub samples: Vec<f64>,
    pub warmup_runs: u32,
    pub stopped_by: Option<StopReason>,
    /// The output after the timed runs, checked against the reference again.
    pub output: Vec<f32>,
}

/// A network built by a runtime.
pub trait Model {
    /// Milliseconds spent building it (pipelines, sessions, first run).
    fn pipeline_ms(&self) -> f64;
    /// GPU dispatches per run where the runtime tells; 0 otherwise.
    fn dispatches(&self) -> u32 {
        0
    }
    /// The output on the prepared input: what verification compares with the reference.
    fn output(&mut self) -> Result<Vec<f32>, String>;
    /// Whether the runtime times itself with [`Model::run_batch`] instead of run by run.
    fn batch_timed(&self) -> bool {
        false
    }
    /// One timed run, for runtimes the agent times run by run; None for batch-timed ones.
    fn run_once(&mut self, timestamps: bool) -> Option<Result<RunTime, String>>;
    /// The whole protocol in one go (batch-timed runtimes).
    fn run_batch(&mut self, protocol: &TimingProtocol) -> Result<Batch, String>;
}

/// One of our own kernel sets, in process.
#[derive(Debug, Clone, Copy)]
pub struct KernelAdapter(pub Framework);

struct KernelModel {
    program: Program,
    input: Vec<f32>,
}

impl Adapter for KernelAdapter {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn version(&self) -> &str {
        self.0.version()
    }

    fn support(&self) -> FrameworkSupport {
        FrameworkSupport {
            name: self.0.name().to_owned(),
            version: self.0.version().to_owned(),
            available: true,
            detail: None,
        }
    }

    fn prepare<'a>(
        &'a self,
        gpu: &'a Gpu,
        net: &Network,
        input: &[f32],
    ) -> Result<Box<dyn Model + 'a>, String> {
        let program = gpu
            .prepare(net, self.0)
            .map_err(|e| format!("cannot build the kernels: {e}"))?;
        Ok(Box::new(KernelModel {
            program,
            input: input.to_vec(),
        }))
    }
}

impl Model for KernelModel {
    fn pipeline_ms(&self) -> f64 {
        self.program.info().pipeline_ms
    }

    fn dispatches(&self) -> u32 {
        self.program.info().dispatches
    }

    fn output(&mut self) -> Result<Vec<f32>, String> {
        self.program
            .infer(&self.input)
            .map_err(|e| format!("the kernels failed to run: {e}"))
    }

    fn run_once(&mut self, timestamps: bool) -> Option<Result<RunTime, String>> {
        Some(self.program.run(timestamps).map_err(|e| e.to_string()))
    }

    fn run_batch(&mut self, _protocol: &TimingProtocol) -> Result<Batch, String> {
        Err("our kernels are timed run by run".into())
    }
}

/// Every framework this agent knows: our kernel sets, then the external adapters found.
pub struct Registry {
    pub adapters: Vec<Box<dyn Adapter>>,
}

impl Registry {
    /// Our kernel sets and the external adapters of [`external::discover`], probed.
    pub fn discover() -> Self {
        let mut adapters: Vec<Box<dyn Adapter>> = Framework::ALL
            .iter()
            .map(|&f| Box::new(KernelAdapter(f)) as Box<dyn Adapter>)
            .collect();
        for a in external::discover() {
            if adapters.iter().all(|b| b.name() != a.name()) {
                adapters.push(Box::new(a));
            }
        }
        Self { adapters }
    }

    /// The process-wide registry, discovered and probed once (probing starts subprocesses).
    pub fn global() -> &'static Self {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(Self::discover)
    }

    pub fn get(&self, name: &str) -> Option<&dyn Adapter> {
        self.adapters
            .iter()
            .find(|a| a.name() == name)
            .map(AsRef::as_ref)
    }

    pub fn supported(&self) -> Vec<FrameworkSupport> {
        self.adapters.iter().map(|a| a.support()).collect()
    }

    /// The adapter named `name` when it can run here, else why not (for messages).
    pub fn usable(&self, name: &str) -> Result<&dyn Adapter, String> {
        match self.get(name) {
            Some(a) => {
                let s = a.support();
                if s.available {
                    Ok(a)
                } else {
                    Err(format!(
                        "framework `{name}` is not available on this agent: {}",
                        s.detail.as_deref().unwrap_or("no reason given")
                    ))
                }
            }
            None => Err(format!(
                "this agent has no framework `{name}` (known: {})",
                self.adapters
                    .iter()
                    .map(|a| a.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}
