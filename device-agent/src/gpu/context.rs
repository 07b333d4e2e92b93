//! An opened GPU: device, queue, and the shader modules and pipelines built so far.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::framework::Framework;
use crate::model::Network;

use super::adapter::{describe, select_adapter};
use super::lower::{DeviceLimits, Kernel, lower};
use super::program::Program;
use super::{BackendChoice, GpuError, GpuReport, PointwiseStrategy};

/// Pipelines are keyed by kernel and the bit patterns of their override constants.
type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

/// The GPU the agent computes on, ready to build [`Program`]s.
///
/// Pipelines are cached: blocks that share a kernel specialisation share its pipeline, as
/// layers of one network would in a real runtime.
pub struct Gpu {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    report: GpuReport,
    /// Nanoseconds per timestamp tick, when the device was opened with timestamp queries.
    timestamp_period_ns: Option<f64>,
    // Mutexes, not RefCells: the agent's worker runs jobs on a blocking thread of its own.
    modules: Mutex<HashMap<Kernel, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Errors wgpu raised outside any error scope (during submission, say); a run that finds
    /// one fails instead of the process aborting in wgpu's default handler.
    pub(super) uncaptured: Arc<Mutex<Vec<String>>>,
    pub(super) limits: DeviceLimits,
    pub(super) max_binding_size: u64,
}

impl Gpu {
    /// Opens the best adapter on `choice`, with timestamp queries when it offers them.
    pub fn open(choice: BackendChoice) -> Result<Self, GpuError> {
        let adapter = select_adapter(choice)?;
        let report = describe(&adapter, choice);
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let desc = wgpu::DeviceDescriptor {
            label: Some("gpulut-agent compute"),
            required_features: features,
            // The adapter's own limits: defaults can exceed what a phone offers, and the big
            // 1x1 convs need more than the default storage binding size on some adapters.
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut errors) = sink.lock() {
                errors.push(e.to_string());
            }
        }));
        let timestamp_period_ns = features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| f64::from(queue.get_timestamp_period()))
            .filter(|p| *p > 0.0);
        let limits = device.limits();
        let pointwise = if report.fingerprint.device_type == "cpu" {
            PointwiseStrategy::RegisterBlocked
        } else {
            PointwiseStrategy::WorkgroupTiled
        };
        Ok(Self {
            device,
            queue,
            report,
            timestamp_period_ns,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            limits: DeviceLimits {
                max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
                max_uniform_binding: limits.max_uniform_buffer_binding_size,
                pointwise,
            },
            max_binding_size: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
        })
    }

    /// The adapter this context runs on.
    pub fn report(&self) -> &GpuReport {
        &self.report
    }

    /// Whether runs can be timed with GPU timestamps.
    pub fn has_timestamps(&self) -> bool {
        self.timestamp_period_ns.is_some()
    }

    pub(super) fn timestamp_period_ns(&self) -> Option<f64> {
        self.timestamp_period_ns
    }

    /// Builds every pipeline and buffer `net` needs under `framework`, uploads its weights,
    /// and returns a program ready to run with nothing left to create.
    pub fn prepare(&self, net: &Network, framework: Framework) -> Result<Program, GpuError> {
        self.prepare_with(net, framework, PointwiseStrategy::Auto)
    }

    /// [`Gpu::prepare`] with the pointwise kernel chosen by the caller instead of by adapter
    /// type, so every kernel can be verified on whatever device runs the tests.
    pub fn prepare_with(
        &self,
        net: &Network,
        framework: Framework,
        pointwise: PointwiseStrategy,
    ) -> Result<Program, GpuError> {
        let mut limits = self.limits;
        if pointwise != PointwiseStrategy::Auto {
            limits.pointwise = pointwise;
        }
        let lowered = lower(net, framework, limits);
        Program::build(self, &lowered)
    }

    /// The pipeline of `kernel` specialised with `constants`, built on first use. Returns the
    /// pipeline and the milliseconds spent building it (0 when it came from the cache).
    pub(super) fn pipeline(
        &self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
    ) -> Result<(wgpu::ComputePipeline, f64), GpuError> {
        let key: PipelineKey = (
            kernel,
            constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        );
        if let Some(p) = locked(&self.pipelines).get(&key) {
            return Ok((p.clone(), 0.0));
        }
        let start = Instant::now();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(kernel);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name()),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Kernel {
                kernel: kernel.name(),
                message: e.to_string(),
            });
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        locked(&self.pipelines).insert(key, pipeline.clone());
        Ok((pipeline, ms))
    }

    fn module(&self, kernel: Kernel) -> wgpu::ShaderModule {
        locked(&self.modules)
            .entry(kernel)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.name()),
                        source: wgpu::ShaderSource::Wgsl(kernel.source()),
                    })
            })
            .clone()
    }
}

/// A cache lock; a panic elsewhere cannot leave a cache of compiled objects inconsistent, so a
/// poisoned lock is used as it is.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
