//! Everything the agent needs from the GPU, behind plain types.
//!
//! This is the only module that knows wgpu: wgpu's API changes with every major release,
//! so an upgrade should touch these files and nothing else. Callers get [`GpuReport`],
//! [`Gpu`], [`Program`] and [`GpuError`], which name no wgpu type.
//!
//! Kernels are WGSL in `shaders/`; `lower` turns a [`crate::model::Network`] into dispatches
//! for one [`crate::framework::Framework`], `program` binds them to buffers and runs them.

mod adapter;
mod codegen;
mod context;
mod fused;
mod lower;
mod program;
pub mod version;

use std::fmt;

use gpulut_tables::wire::GpuFingerprint;
use serde::Serialize;

pub use adapter::probe;
pub use context::Gpu;
pub use program::{Program, ProgramInfo, RunTime};

/// How `wgpu-fused` runs pointwise convs. Both kernels compute the same thing; which is
/// faster depends on how the device treats workgroup memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointwiseStrategy {
    /// Register-blocked on CPU adapters (lavapipe, SwiftShader), where workgroup memory is
    /// read lane by lane like any buffer; tiled through workgroup memory on GPUs.
    #[default]
    Auto,
    /// 4 pixels x 16 channels (or 8 x 8) per invocation, weights in uniform buffers.
    RegisterBlocked,
    /// 64 x 32 output tiles staged through workgroup memory.
    WorkgroupTiled,
}

/// Which graphics API to look for adapters on.
///
/// Phones profile through Vulkan, so `all` still prefers a Vulkan adapter; the others exist
/// to compare backends on one machine, and because macOS and Windows have no Vulkan by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendChoice {
    /// Vulkan, then Metal, then DX12; OpenGL ES only when none of them has an adapter.
    #[default]
    All,
    Vulkan,
    /// OpenGL ES through EGL (or WGL on Windows).
    Gl,
    Metal,
    Dx12,
}

impl BackendChoice {
    /// The name used on the command line and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Vulkan => "vulkan",
            Self::Gl => "gl",
            Self::Metal => "metal",
            Self::Dx12 => "dx12",
        }
    }

    /// What a person must install or use to get an adapter on this backend. Said on failure
    /// because "no adapter" alone leaves the person with nothing to do.
    fn install_hint(self) -> &'static str {
        match self {
            Self::All | Self::Vulkan => {
                if cfg!(target_os = "android") {
                    "no Vulkan driver found: this Android build exposes no usable Vulkan driver \
                     (check `ls /vendor/lib64/hw/vulkan.*`)"
                } else if cfg!(target_vendor = "apple") {
                    "no Metal device found: this system reports no Metal-capable GPU"
                } else {
                    "no Vulkan driver found: install mesa-vulkan-drivers libvulkan1 (lavapipe) \
                     or your GPU's driver; `vulkaninfo --summary` should list a device"
                }
            }
            Self::Gl => {
                "no OpenGL ES driver found: install libegl1 libgles2 and mesa (libegl-mesa0) \
                 or your GPU's driver"
            }
            Self::Metal => "no Metal device found: this system reports no Metal-capable GPU",
            Self::Dx12 => {
                "no DirectX 12 adapter found: DX12 needs Windows 10 or later and a D3D12 driver"
            }
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no GPU could be described.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The backend was compiled out of this build, or does not exist on this OS.
    #[error("backend `{backend}` is not available on {os} in this build")]
    BackendUnavailable {
        backend: BackendChoice,
        os: &'static str,
    },
    /// The backend exists but the system has no driver (or no device) for it. The message
    /// is the hint alone: it already names what is missing and what to install.
    #[error("{hint}")]
    NoAdapter {
        backend: BackendChoice,
        hint: &'static str,
    },
    /// The adapter exists but refused to open a device.
    #[error("cannot open the GPU device: {0}")]
    Device(String),
    /// A kernel failed to compile or its pipeline or bindings failed validation: a bug in
    /// the agent, reported rather than aborting the whole run.
    #[error("kernel `{kernel}` failed to build: {message}")]
    Kernel {
        kernel: &'static str,
        message: String,
    },
    /// A buffer larger than the device allows in one binding.
    #[error("{what} needs {bytes} bytes, more than the {limit} bytes this GPU binds at once")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
    },
    #[error("the input has {got} values, the program takes {expected}")]
    InputLength { expected: u64, got: usize },
    /// Submission, waiting or reading back failed (device lost, out of memory, ...).
    #[error("GPU execution failed: {0}")]
    Execution(String),
}

/// Limits that decide how compute kernels can be shaped and how large their buffers may be.
///
/// A subset of wgpu's limits on purpose: the render-only ones say nothing about how a
/// block will run, and the full list changes with wgpu releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ComputeLimits {
    pub max_compute_workgroup_size_x: u64,
    pub max_compute_workgroup_size_y: u64,
    pub max_compute_workgroup_size_z: u64,
    pub max_compute_invocations_per_workgroup: u64,
    pub max_compute_workgroup_storage_size: u64,
    pub max_compute_workgroups_per_dimension: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_uniform_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_shader_stage: u64,
    pub max_bind_groups: u64,
    pub max_bindings_per_bind_group: u64,
    pub min_storage_buffer_offset_alignment: u64,
    pub min_uniform_buffer_offset_alignment: u64,
}

impl ComputeLimits {
    /// The limits as (name, value) rows, in declaration order, for tables and logs.
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "max_compute_workgroup_size_x",
                self.max_compute_workgroup_size_x,
            ),
            (
                "max_compute_workgroup_size_y",
                self.max_compute_workgroup_size_y,
            ),
            (
                "max_compute_workgroup_size_z",
                self.max_compute_workgroup_size_z,
            ),
            (
                "max_compute_invocations_per_workgroup",
                self.max_compute_invocations_per_workgroup,
            ),
            (
                "max_compute_workgroup_storage_size",
                self.max_compute_workgroup_storage_size,
            ),
            (
                "max_compute_workgroups_per_dimension",
                self.max_compute_workgroups_per_dimension,
            ),
            (
                "max_storage_buffer_binding_size",
                self.max_storage_buffer_binding_size,
            ),
            (
                "max_uniform_buffer_binding_size",
                self.max_uniform_buffer_binding_size,
            ),
            ("max_buffer_size", self.max_buffer_size),
            (
                "max_storage_buffers_per_shader_stage",
                self.max_storage_buffers_per_shader_stage,
            ),
            ("max_bind_groups", self.max_bind_groups),
            (
                "max_bindings_per_bind_group",
                self.max_bindings_per_bind_group,
            ),
            (
                "min_storage_buffer_offset_alignment",
                self.min_storage_buffer_offset_alignment,
            ),
            (
                "min_uniform_buffer_offset_alignment",
                self.min_uniform_buffer_offset_alignment,
            ),
        ]
    }
}

/// What the chosen adapter is and can do, with no wgpu type in sight.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuReport {
    /// The GPU half of the device fingerprint.
    pub fingerprint: GpuFingerprint,
    /// PCI bus address (`0000:01:00.0`) where the driver reports one; tells two identical
    /// desktop GPUs apart. Phones have none.
    pub pci_bus_id: Option<String>,
    pub limits: ComputeLimits,
    /// Supported optional features, by their WebGPU/wgpu kebab-case names, sorted.
    pub features: Vec<String>,
    /// Things a person should know that did not stop the probe: a fallback to OpenGL ES, or
    /// a device that could not be opened to read the timestamp period.
    pub warnings: Vec<String>,
}
