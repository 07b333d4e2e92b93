//! Decoding of the packed version numbers Vulkan drivers report. Kept apart from the wgpu
//! calls so it can be tested without a GPU, and so a wgpu upgrade never touches it.

/// Vulkan's `VK_VENDOR_ID_MESA`, also the vendor id of lavapipe.
const VENDOR_MESA: u32 = 0x1_0005;
const VENDOR_NVIDIA: u32 = 0x10DE;

/// Formats a packed Vulkan API version (`VK_MAKE_API_VERSION`) as `major.minor.patch`.
///
/// The top 3 bits are the variant; a non-zero variant means a non-Vulkan API (Vulkan SC), so
/// it is shown as a prefix rather than silently folded into the major number.
pub fn format_api_version(packed: u32) -> String {
    let variant = packed >> 29;
    let major = (packed >> 22) & 0x7F;
    let minor = (packed >> 12) & 0x3FF;
    let patch = packed & 0xFFF;
    if variant == 0 {
        format!("{major}.{minor}.{patch}")
    } else {
        format!("{variant}:{major}.{minor}.{patch}")
    }
}

/// Formats a packed `driverVersion`. Its layout is vendor-defined: NVIDIA uses 10.8.8.6 bits,
/// most others (Mesa, Arm, Qualcomm) the API version layout without a variant.
///
/// Only used when the driver gives no human-readable version string of its own.
pub fn format_driver_version(vendor_id: u32, packed: u32) -> String {
    match vendor_id {
        VENDOR_NVIDIA => format!(
            "{}.{}.{}.{}",
            (packed >> 22) & 0x3FF,
            (packed >> 14) & 0xFF,
            (packed >> 6) & 0xFF,
            packed & 0x3F
        ),
        _ => format!(
            "{}.{}.{}",
            packed >> 22,
            (packed >> 12) & 0x3FF,
            packed & 0xFFF
        ),
    }
}

/// Names the vendor behind a Vulkan vendor id, so a person reading `info` need not look
/// up PCI ids. Unknown ids give `None`; the id itself is always shown too.
pub fn vendor_name(vendor_id: u32) -> Option<&'static str> {
    Some(match vendor_id {
        0x1002 => "AMD",
        0x1010 => "Imagination",
        VENDOR_NVIDIA => "NVIDIA",
        0x106B => "Apple",
        0x13B5 => "Arm",
        0x144D => "Samsung",
        0x19E5 => "Huawei",
        0x1AE0 => "Google",
        0x5143 => "Qualcomm",
        0x8086 => "Intel",
        0x1_0001 => "Vivante",
        0x1_0002 => "VeriSilicon",
        0x1_0004 => "Codeplay",
        VENDOR_MESA => "Mesa",
        0x1_0006 => "PoCL",
        _ => return None,
    })
}

/// Formats a vendor or device id as upper-case hex, at least 4 digits, the way PCI ids and
/// `vulkaninfo` show them (`0x13B5`, `0x10005`).
pub fn hex_id(id: u32) -> String {
    format!("0x{id:04X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_of_lavapipe() {
        // VK_MAKE_API_VERSION(0, 1, 3, 230), what Mesa 22.3 lavapipe reports.
        let packed = (1 << 22) | (3 << 12) | 230;
        assert_eq!(format_api_version(packed), "1.3.230");
    }

    #[test]
    fn api_version_with_variant_is_marked() {
        let packed = (1 << 29) | (1 << 22);
        assert_eq!(format_api_version(packed), "1:1.0.0");
    }

    #[test]
    fn driver_version_layouts() {
        assert_eq!(format_driver_version(0x1_0005, 1), "0.0.1");
        // NVIDIA 535.113.1.0
        let nv = (535 << 22) | (113 << 14) | (1 << 6);
        assert_eq!(format_driver_version(0x10DE, nv), "535.113.1.0");
        // Adreno drivers report e.g. 512.615.0 in the standard layout.
        let adreno = (512 << 22) | (615 << 12);
        assert_eq!(format_driver_version(0x5143, adreno), "512.615.0");
    }

    #[test]
    fn hex_ids() {
        assert_eq!(hex_id(0x13B5), "0x13B5");
        assert_eq!(hex_id(0x1_0005), "0x10005");
        assert_eq!(hex_id(0), "0x0000");
        assert_eq!(hex_id(0x5143), "0x5143");
    }

    #[test]
    fn vendor_names() {
        assert_eq!(vendor_name(0x13B5), Some("Arm"));
        assert_eq!(vendor_name(0x1_0005), Some("Mesa"));
        assert_eq!(vendor_name(0xFFFF), None);
    }
}
