//! Finding an adapter and describing it, in wgpu terms.

use gpulut_tables::wire::GpuFingerprint;

use super::version::{format_api_version, format_driver_version};
use super::{BackendChoice, ComputeLimits, GpuError, GpuReport};

/// Finds the best adapter on `choice` and describes it.
///
/// A device is opened (with timestamp queries when offered) only to read the timestamp
/// period, which wgpu exposes on the queue and not on the adapter.
pub fn probe(choice: BackendChoice) -> Result<GpuReport, GpuError> {
    let adapter = select_adapter(choice)?;
    Ok(describe(&adapter, choice))
}

/// The report of an adapter already chosen (also used by the compute context, so `bench`
/// reports exactly the adapter it ran on).
pub(super) fn describe(adapter: &wgpu::Adapter, choice: BackendChoice) -> GpuReport {
    let info = adapter.get_info();
    let features = adapter.features();
    let timestamp_query = features.contains(wgpu::Features::TIMESTAMP_QUERY);
    let mut warnings = Vec::new();

    if choice == BackendChoice::All && info.backend == wgpu::Backend::Gl {
        warnings.push(format!(
            "falling back to OpenGL ES, which phones are not profiled with; {}",
            BackendChoice::Vulkan.install_hint()
        ));
    }

    let timestamp_period_ns = if timestamp_query {
        match timestamp_period(adapter) {
            Ok(period) => Some(period),
            Err(e) => {
                warnings.push(format!(
                    "could not open a device to read the timestamp period: {e}"
                ));
                None
            }
        }
    } else {
        None
    };

    let vulkan = vulkan_properties(adapter);
    let driver_version = meaningful(&info.driver_info)
        .or_else(|| vulkan.map(|v| format_driver_version(info.vendor, v.driver_version)))
        .unwrap_or_else(|| "unknown".to_owned());

    let fingerprint = GpuFingerprint {
        name: meaningful(&info.name).unwrap_or_else(|| "unknown".to_owned()),
        vendor_id: info.vendor,
        device_id: info.device,
        device_type: device_type_name(info.device_type).to_owned(),
        backend: info.backend.to_str().to_owned(),
        driver: meaningful(&info.driver).unwrap_or_else(|| "unknown".to_owned()),
        driver_version,
        api_version: vulkan.map(|v| format_api_version(v.api_version)),
        timestamp_query,
        timestamp_period_ns,
    };

    GpuReport {
        fingerprint,
        pci_bus_id: meaningful(&info.device_pci_bus_id),
        limits: compute_limits(&adapter.limits()),
        features: feature_names(features),
        warnings,
    }
}

/// Enumerates adapters rather than using `request_adapter`, because wgpu's default choice
/// follows power preference across backends, while profiling wants Vulkan first: it is what
/// phones run.
pub(super) fn select_adapter(choice: BackendChoice) -> Result<wgpu::Adapter, GpuError> {
    let wanted = match choice {
        BackendChoice::All => wgpu::Backends::PRIMARY,
        BackendChoice::Vulkan => wgpu::Backends::VULKAN,
        BackendChoice::Gl => wgpu::Backends::GL,
        BackendChoice::Metal => wgpu::Backends::METAL,
        BackendChoice::Dx12 => wgpu::Backends::DX12,
    };
    let compiled = wgpu::Instance::enabled_backend_features();
    if !compiled.intersects(wanted) {
        return Err(GpuError::BackendUnavailable {
            backend: choice,
            os: std::env::consts::OS,
        });
    }

    let mut adapters = enumerate(wanted);
    // GL is a last resort under `all`: probing it costs an EGL context, and its compute
    // support is too limited to profile with when anything better exists.
    if adapters.is_empty() && choice == BackendChoice::All && compiled.contains(wgpu::Backends::GL)
    {
        adapters = enumerate(wgpu::Backends::GL);
    }

    adapters
        .into_iter()
        .min_by_key(|a| {
            let info = a.get_info();
            (
                backend_rank(info.backend),
                device_type_rank(info.device_type),
            )
        })
        .ok_or(GpuError::NoAdapter {
            backend: choice,
            hint: choice.install_hint(),
        })
}

fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        // No validation layers even in debug builds: `info` creates nothing to validate,
        // and a missing layer only adds noise. `WGPU_VALIDATION=1` still turns them on.
        flags: wgpu::InstanceFlags::empty().with_env(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Lower is preferred.
fn backend_rank(backend: wgpu::Backend) -> u8 {
    match backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    }
}

/// Lower is preferred: a real GPU over a software rasteriser such as lavapipe.
fn device_type_rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn device_type_name(device_type: wgpu::DeviceType) -> &'static str {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
        wgpu::DeviceType::VirtualGpu => "virtual-gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

fn timestamp_period(adapter: &wgpu::Adapter) -> Result<f32, wgpu::RequestDeviceError> {
    let desc = wgpu::DeviceDescriptor {
        label: Some("gpulut-agent info"),
        required_features: wgpu::Features::TIMESTAMP_QUERY,
        // Default limits can exceed what a phone offers; the adapter's own never do.
        required_limits: adapter.limits(),
        ..Default::default()
    };
    let (_device, queue) = pollster::block_on(adapter.request_device(&desc))?;
    Ok(queue.get_timestamp_period())
}

fn compute_limits(l: &wgpu::Limits) -> ComputeLimits {
    ComputeLimits {
        max_compute_workgroup_size_x: l.max_compute_workgroup_size_x.into(),
        max_compute_workgroup_size_y: l.max_compute_workgroup_size_y.into(),
        max_compute_workgroup_size_z: l.max_compute_workgroup_size_z.into(),
        max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup.into(),
        max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size.into(),
        max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension.into(),
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
        max_buffer_size: l.max_buffer_size,
        max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage.into(),
        max_bind_groups: l.max_bind_groups.into(),
        max_bindings_per_bind_group: l.max_bindings_per_bind_group.into(),
        min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment.into(),
        min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment.into(),
    }
}

/// Kebab-case names (`timestamp-query`, `wgpu-...`) because they are wgpu's stable spelling
/// and match the WebGPU spec; falls back to the bitflag name for any flag without one.
fn feature_names(features: wgpu::Features) -> Vec<String> {
    let mut names: Vec<String> = features
        .iter_names()
        .map(|(flag_name, flag)| flag.as_str().unwrap_or(flag_name).to_owned())
        .collect();
    names.sort();
    names
}

/// Drivers fill unknown strings with `""` or wgpu's `"?"`; neither says anything.
fn meaningful(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s != "?").then(|| s.to_owned())
}

/// The two packed numbers wgpu's `AdapterInfo` leaves out.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(any(
        windows,
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd"
    )),
    allow(dead_code, reason = "only built where wgpu has a Vulkan backend")
)]
struct VulkanProperties {
    api_version: u32,
    driver_version: u32,
}

/// Reads `VkPhysicalDeviceProperties` through wgpu-hal, since wgpu's `AdapterInfo` has no
/// Vulkan API version and the fingerprint needs it (kernels compile differently per version).
#[cfg(any(
    windows,
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd"
))]
#[allow(unsafe_code)]
fn vulkan_properties(adapter: &wgpu::Adapter) -> Option<VulkanProperties> {
    // SAFETY: `as_hal` requires that the returned hal adapter is not destroyed while in use
    // and that wgpu-hal's own rules are kept. We only copy a plain properties struct out of
    // it (the values wgpu read at enumeration) and drop the guard at once; nothing is
    // created, destroyed or called on the Vulkan instance. Non-Vulkan adapters give `None`.
    let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
    let props = hal.physical_device_capabilities().properties();
    Some(VulkanProperties {
        api_version: props.api_version,
        driver_version: props.driver_version,
    })
}

/// No Vulkan backend is compiled in on this platform, so there is nothing to read.
#[cfg(not(any(
    windows,
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd"
)))]
fn vulkan_properties(_adapter: &wgpu::Adapter) -> Option<VulkanProperties> {
    None
}
