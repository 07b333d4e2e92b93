//! Types that cross the wire between the agent and the server. They live here, in the
//! crate both sides depend on, so the two can never disagree on a field name.

use serde::{Deserialize, Serialize};

/// What identifies one physical device (a phone or a desktop GPU) and the software stack a
/// measurement ran on. Latency depends on every one of these, so a table is only valid for
/// the fingerprint it was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFingerprint {
    /// Marketing model, e.g. `Pixel 7` (Android `ro.product.model`), or the host's product name.
    pub model: Option<String>,
    /// Manufacturer, e.g. `Google` (Android `ro.product.manufacturer`), or the host's vendor.
    pub manufacturer: Option<String>,
    /// System on chip, e.g. `Tensor G2` (Android `ro.soc.model`, else `ro.board.platform`), or the CPU model.
    pub soc: Option<String>,
    /// A stable, non-secret identifier of this physical machine where the OS exposes one
    /// (a SHA-256 of `/etc/machine-id` on Linux); lets a re-enrolled device keep its history.
    pub hardware_id: Option<String>,
    /// `android`, `linux`, `macos`, `windows`, ...
    pub os: String,
    /// Kernel release or OS version string.
    pub os_version: Option<String>,
    /// Android API level (`ro.build.version.sdk`), only on Android.
    pub android_api_level: Option<u32>,
    pub gpu: GpuFingerprint,
    /// Version of the agent that produced this fingerprint.
    pub agent_version: String,
}

/// The GPU as the graphics API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuFingerprint {
    /// Adapter name, e.g. `Mali-G710` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// PCI vendor id (0x13B5 for Arm, 0x5143 for Qualcomm, 0x10005 for Mesa).
    pub vendor_id: u32,
    pub device_id: u32,
    /// `integrated-gpu`, `discrete-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    /// `vulkan`, `metal`, `dx12` or `gl`.
    pub backend: String,
    /// Driver name, e.g. `llvmpipe` or `Qualcomm Technologies Inc. Adreno Vulkan Driver`.
    pub driver: String,
    /// Driver version string as the driver reports it.
    pub driver_version: String,
    /// Vulkan API version the device supports, e.g. `1.3.230`, when the backend is Vulkan.
    pub api_version: Option<String>,
    /// Whether GPU timestamp queries can time compute passes on this adapter.
    pub timestamp_query: bool,
    /// Nanoseconds per timestamp tick, when timestamps are supported.
    pub timestamp_period_ns: Option<f32>,
}
