//! The `info` command: the device fingerprint and GPU capabilities, as a table or JSON.
//!
//! A person runs `info` before enrolling a phone to see that the agent finds the GPU; the
//! JSON form is what scripts and the enrollment request reuse.

use comfy_table::{ContentArrangement, Table, presets};
use gpulut_tables::protocol::FrameworkSupport;
use gpulut_tables::wire::DeviceFingerprint;
use serde::{Deserialize, Serialize};

use crate::gpu::version::{hex_id, vendor_name};
use crate::gpu::{self, BackendChoice, ComputeLimits, GpuError, GpuReport};
use crate::host::{self, HostFacts};

/// The version stamped into every fingerprint, so the server can tell which agent measured.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The document `info --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoReport {
    pub fingerprint: DeviceFingerprint,
    pub limits: ComputeLimits,
    pub features: Vec<String>,
    /// Every framework this agent knows, available or not (with the reason).
    #[serde(default)]
    pub frameworks: Vec<FrameworkSupport>,
}

/// Everything `info` shows, including what is not part of the JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub report: InfoReport,
    pub host: HostFacts,
    pub pci_bus_id: Option<String>,
    /// Problems worth a warning that did not stop the report.
    pub warnings: Vec<String>,
}

/// Probes the GPU on `backend` and the host, and builds the fingerprint from both.
pub fn collect(backend: BackendChoice) -> Result<Info, GpuError> {
    let gpu = gpu::probe(backend)?;
    let mut info = assemble(host::collect(), gpu);
    info.report.frameworks = crate::framework::supported();
    Ok(info)
}

/// Joins host facts and the GPU report; separate from [`collect`] so it can be tested with
/// made-up inputs.
pub fn assemble(host: HostFacts, gpu: GpuReport) -> Info {
    let fingerprint = DeviceFingerprint {
        model: host.model.clone(),
        manufacturer: host.manufacturer.clone(),
        soc: host.soc.clone(),
        hardware_id: host.hardware_id.clone(),
        os: host.os.clone(),
        os_version: host.os_version(),
        android_api_level: host.android_api_level,
        gpu: gpu.fingerprint,
        agent_version: AGENT_VERSION.to_owned(),
    };
    Info {
        report: InfoReport {
            fingerprint,
            limits: gpu.limits,
            features: gpu.features,
            frameworks: Vec::new(),
        },
        host,
        pci_bus_id: gpu.pci_bus_id,
        warnings: gpu.warnings,
    }
}

/// Renders `info` for a person: one table per section, so a phone's narrow terminal
/// still shows them whole.
pub fn render_table(info: &Info) -> String {
    let fp = &info.report.fingerprint;
    let g = &fp.gpu;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());

    let mut device = section("Device");
    device.add_row(vec!["model".to_owned(), or_dash(&fp.model)]);
    device.add_row(vec!["manufacturer".to_owned(), or_dash(&fp.manufacturer)]);
    device.add_row(vec!["soc".to_owned(), or_dash(&fp.soc)]);
    device.add_row(vec!["os".to_owned(), fp.os.clone()]);
    device.add_row(vec![
        "os release".to_owned(),
        or_dash(&info.host.os_release),
    ]);
    device.add_row(vec![
        "kernel".to_owned(),
        or_dash(&info.host.kernel_release),
    ]);
    if let Some(level) = fp.android_api_level {
        device.add_row(vec!["android api level".to_owned(), level.to_string()]);
    }
    device.add_row(vec!["hardware id".to_owned(), or_dash(&fp.hardware_id)]);
    device.add_row(vec!["agent version".to_owned(), fp.agent_version.clone()]);

    let mut gpu = section("GPU");
    gpu.add_row(vec!["name".to_owned(), g.name.clone()]);
    gpu.add_row(vec!["vendor id".to_owned(), describe_vendor(g.vendor_id)]);
    gpu.add_row(vec!["device id".to_owned(), hex_id(g.device_id)]);
    gpu.add_row(vec!["type".to_owned(), g.device_type.clone()]);
    gpu.add_row(vec!["backend".to_owned(), g.backend.clone()]);
    gpu.add_row(vec!["driver".to_owned(), g.driver.clone()]);
    gpu.add_row(vec!["driver version".to_owned(), g.driver_version.clone()]);
    gpu.add_row(vec!["vulkan version".to_owned(), or_dash(&g.api_version)]);
    if let Some(bus) = &info.pci_bus_id {
        gpu.add_row(vec!["pci bus".to_owned(), bus.clone()]);
    }
    gpu.add_row(vec![
        "timestamp query".to_owned(),
        if g.timestamp_query { "yes" } else { "no" }.to_owned(),
    ]);
    gpu.add_row(vec![
        "timestamp period".to_owned(),
        g.timestamp_period_ns
            .map_or_else(|| "-".to_owned(), |p| format!("{p} ns/tick")),
    ]);

    let mut limits = section("Compute limits");
    for (name, value) in info.report.limits.rows() {
        limits.add_row(vec![name.to_owned(), value.to_string()]);
    }

    // Two per row: desktop adapters list 40+ features, and one per row would bury the rest.
    let mut features = section(&format!("Features ({})", info.report.features.len()));
    for pair in info.report.features.chunks(2) {
        features.add_row(pair.to_vec());
    }

    let mut frameworks = Table::new();
    frameworks
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["Frameworks", "version", "available"]);
    for f in &info.report.frameworks {
        let available = if f.available {
            "yes".to_owned()
        } else {
            format!("no: {}", f.detail.as_deref().unwrap_or("no reason given"))
        };
        frameworks.add_row(vec![
            f.name.clone(),
            or_dash(&Some(f.version.clone()).filter(|v| !v.is_empty())),
            available,
        ]);
    }

    [device, gpu, limits, features, frameworks]
        .iter()
        .map(Table::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn section(title: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![title, ""]);
    t
}

/// `0x13B5 (Arm)`: the id is what databases key on, the name is what a person recognises.
pub fn describe_vendor(vendor_id: u32) -> String {
    match vendor_name(vendor_id) {
        Some(name) => format!("{} ({name})", hex_id(vendor_id)),
        None => hex_id(vendor_id),
    }
}

#[cfg(test)]
mod tests {
    use gpulut_tables::wire::GpuFingerprint;

    use super::*;

    fn sample() -> Info {
        let host = HostFacts {
            os: "android".into(),
            os_release: Some("Android 14".into()),
            kernel_release: Some("5.10.198".into()),
            model: Some("Pixel 7".into()),
            manufacturer: Some("Google".into()),
            soc: Some("Tensor G2".into()),
            hardware_id: None,
            android_api_level: Some(34),
        };
        let gpu_report = GpuReport {
            fingerprint: GpuFingerprint {
                name: "Mali-G710".into(),
                vendor_id: 0x13B5,
                device_id: 0xA8620000,
                device_type: "integrated-gpu".into(),
                backend: "vulkan".into(),
                driver: "Mali".into(),
                driver_version: "v1.r38p1".into(),
                api_version: Some("1.3.246".into()),
                timestamp_query: true,
                timestamp_period_ns: Some(1.0),
            },
            pci_bus_id: None,
            limits: ComputeLimits {
                max_compute_workgroup_size_x: 1024,
                max_compute_workgroup_size_y: 1024,
                max_compute_workgroup_size_z: 64,
                max_compute_invocations_per_workgroup: 1024,
                max_compute_workgroup_storage_size: 32768,
                max_compute_workgroups_per_dimension: 65535,
                max_storage_buffer_binding_size: 1 << 27,
                max_uniform_buffer_binding_size: 65536,
                max_buffer_size: 1 << 30,
                max_storage_buffers_per_shader_stage: 8,
                max_bind_groups: 4,
                max_bindings_per_bind_group: 1000,
                min_storage_buffer_offset_alignment: 256,
                min_uniform_buffer_offset_alignment: 256,
            },
            features: vec!["timestamp-query".into()],
            warnings: vec!["out of memory".into()],
        };
        let mut info = assemble(host, gpu_report);
        info.report.frameworks = vec![FrameworkSupport {
            name: "ncnn-vulkan".into(),
            version: String::new(),
            available: false,
            detail: Some("python module ncnn not found".into()),
        }];
        info
    }

    #[test]
    fn fingerprint_takes_host_and_gpu_facts() {
        let info = sample();
        let fp = &info.report.fingerprint;
        assert_eq!(
            fp.os_version.as_deref(),
            Some("Android 14 (kernel 5.10.198)")
        );
        assert_eq!(fp.android_api_level, Some(34));
        assert_eq!(fp.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(fp.gpu.name, "Mali-G710");
        assert_eq!(info.warnings, ["out of memory"]);
    }

    #[test]
    fn table_shows_every_section() {
        let text = render_table(&sample());
        for needle in [
            "Pixel 7",
            "Tensor G2",
            "android api level",
            "Mali-G710",
            "0x13B5 (Arm)",
            "0xA8620000",
            "1.3.246",
            "1 ns/tick",
            "max_compute_invocations_per_workgroup",
            "Features (1)",
            "timestamp-query",
            "Frameworks",
            "no: python module ncnn not found",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn json_document_round_trips() {
        let report = sample().report;
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["limits"]["max_bind_groups"], 4);
        assert_eq!(json["fingerprint"]["gpu"]["vendor_id"], 0x13B5);
        let back: InfoReport = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, report);
    }

    #[test]
    fn vendor_description() {
        assert_eq!(describe_vendor(0x5143), "0x5143 (Qualcomm)");
        assert_eq!(describe_vendor(0x1234), "0x1234");
    }
}
