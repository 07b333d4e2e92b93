//! Facts about the machine around the GPU: OS, kernel, model, SoC, a stable machine id.
//!
//! Every source here is optional on some system (no DMI on phones, no `getprop` off
//! Android, no machine-id in containers), so every fact is an `Option` and a missing or
//! unreadable source gives `None`, never an error: `info` must work on any box.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// What the agent learned about the host. The device fingerprint is built from this plus
/// the GPU report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `android`, `linux`, `macos`, `windows`, ...
    pub os: String,
    /// Human OS name and version, e.g. `Debian GNU/Linux 12 (bookworm)` or `Android 14`.
    pub os_release: Option<String>,
    /// Kernel release, e.g. `6.1.0-18-amd64`; on Linux and Android the GPU kernel driver
    /// ships with it, so it belongs in the fingerprint.
    pub kernel_release: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub soc: Option<String>,
    pub hardware_id: Option<String>,
    pub android_api_level: Option<u32>,
}

impl HostFacts {
    /// The single `os_version` string of the fingerprint: the OS release and the kernel,
    /// both of which can change a driver's behaviour.
    pub fn os_version(&self) -> Option<String> {
        match (&self.os_release, &self.kernel_release) {
            (Some(os), Some(kernel)) => Some(format!("{os} (kernel {kernel})")),
            (Some(os), None) => Some(os.clone()),
            (None, Some(kernel)) => Some(kernel.clone()),
            (None, None) => None,
        }
    }
}

/// Collects what this host exposes to an unprivileged process.
pub fn collect() -> HostFacts {
    if is_android() {
        collect_android()
    } else {
        collect_other()
    }
}

/// Also true for a Linux-targeted binary run on a phone (e.g. in a chroot-less Termux build),
/// where `cfg!` alone would say `linux`.
fn is_android() -> bool {
    cfg!(target_os = "android") || Path::new("/system/build.prop").exists()
}

fn collect_android() -> HostFacts {
    let props = run_getprop();
    let prop = |key: &str| props.get(key).and_then(|v| non_empty(v));
    let release = prop("ro.build.version.release");
    HostFacts {
        os: "android".to_owned(),
        os_release: release.map(|r| format!("Android {r}")),
        kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
        model: prop("ro.product.model"),
        manufacturer: prop("ro.product.manufacturer"),
        soc: prop("ro.soc.model")
            .or_else(|| prop("ro.board.platform"))
            .or_else(|| prop("ro.hardware"))
            .or_else(cpuinfo_model),
        // Unprivileged apps cannot read the serial; `adb shell` can. Hashed, never sent raw.
        hardware_id: prop("ro.serialno").map(|s| hash_id(&s)),
        android_api_level: prop("ro.build.version.sdk").and_then(|s| s.parse().ok()),
    }
}

fn collect_other() -> HostFacts {
    let os = std::env::consts::OS.to_owned();
    let os_release = match os.as_str() {
        "macos" => command_output("sw_vers", &["-productVersion"]).map(|v| format!("macOS {v}")),
        _ => std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| os_release_name(&parse_os_release(&text))),
    };
    HostFacts {
        os,
        os_release,
        kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
        model: read_dmi("product_name").or_else(device_tree_model),
        manufacturer: read_dmi("sys_vendor"),
        soc: cpuinfo_model(),
        hardware_id: read_trimmed("/etc/machine-id")
            .or_else(|| read_trimmed("/var/lib/dbus/machine-id"))
            .map(|id| hash_id(&id)),
        android_api_level: None,
    }
}

/// Derives a stable identifier from a machine id or serial without revealing it.
///
/// Prefixed with an application key, as machine-id(5) asks of anyone deriving ids from it,
/// so the value cannot be matched against other software's hashes of the same id.
pub fn hash_id(raw: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"gpulut-hardware-id:");
    hasher.update(raw.trim().as_bytes());
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses the output of `getprop` (lines of `[key]: [value]`). Values may contain `]`, so
/// only the outer brackets delimit; malformed lines are skipped.
pub fn parse_getprop(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once("]: [")?;
            let key = key.strip_prefix('[')?;
            let value = value.strip_suffix(']')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Picks the CPU's name out of `/proc/cpuinfo` text: `model name` on x86, `Hardware` on
/// (older) ARM kernels, `cpu model` on MIPS. Modern arm64 kernels print none of these.
pub fn parse_cpuinfo_model(text: &str) -> Option<String> {
    const KEYS: [&str; 3] = ["model name", "Hardware", "cpu model"];
    let fields: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            Some((k.trim(), v.trim()))
        })
        .collect();
    KEYS.iter().find_map(|key| {
        fields
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| (*v).to_owned())
    })
}

/// Parses os-release(5): `KEY=value` lines, values optionally in single or double quotes
/// with backslash escapes inside double quotes; comments and blank lines are skipped.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (key, raw) = line.split_once('=')?;
            Some((key.trim().to_owned(), unquote(raw.trim())))
        })
        .collect()
}

/// The human name of the OS from parsed os-release: `PRETTY_NAME`, else `NAME VERSION_ID`.
pub fn os_release_name(fields: &BTreeMap<String, String>) -> Option<String> {
    if let Some(pretty) = fields.get("PRETTY_NAME").and_then(|v| non_empty(v)) {
        return Some(pretty);
    }
    let name = fields.get("NAME").and_then(|v| non_empty(v))?;
    Some(match fields.get("VERSION_ID").and_then(|v| non_empty(v)) {
        Some(version) => format!("{name} {version}"),
        None => name,
    })
}

fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        inner.to_owned()
    } else {
        raw.to_owned()
    }
}

/// Firmware leaves these in DMI fields it was never told to fill; they identify nothing.
const DMI_PLACEHOLDERS: [&str; 5] = [
    "To Be Filled By O.E.M.",
    "Default string",
    "System Product Name",
    "System manufacturer",
    "Not Specified",
];

fn read_dmi(field: &str) -> Option<String> {
    read_trimmed(Path::new("/sys/class/dmi/id").join(field))
        .filter(|v| !DMI_PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(v)))
}

/// ARM boards (Raspberry Pi, Jetson, Chromebooks) have no DMI but name themselves here.
fn device_tree_model() -> Option<String> {
    read_trimmed("/proc/device-tree/model").map(|m| m.trim_end_matches('\0').to_owned())
}

fn cpuinfo_model() -> Option<String> {
    parse_cpuinfo_model(&std::fs::read_to_string("/proc/cpuinfo").ok()?)
}

fn run_getprop() -> BTreeMap<String, String> {
    let program = if Path::new("/system/bin/getprop").exists() {
        "/system/bin/getprop"
    } else {
        "getprop"
    };
    match Command::new(program).output() {
        Ok(out) if out.status.success() => parse_getprop(&String::from_utf8_lossy(&out.stdout)),
        _ => BTreeMap::new(),
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    non_empty(&String::from_utf8_lossy(&out.stdout))
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    non_empty(String::from_utf8_lossy(&text).trim_end_matches('\0'))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getprop_lines() {
        let text = "[ro.product.model]: [Pixel 7]\n\
                    [ro.build.version.sdk]: [34]\n\
                    [ro.empty]: []\n\
                    [odd.value]: [a]: [b]\n\
                    garbage line\n";
        let props = parse_getprop(text);
        assert_eq!(
            props.get("ro.product.model").map(String::as_str),
            Some("Pixel 7")
        );
        assert_eq!(
            props.get("ro.build.version.sdk").map(String::as_str),
            Some("34")
        );
        assert_eq!(props.get("ro.empty").map(String::as_str), Some(""));
        assert_eq!(props.get("odd.value").map(String::as_str), Some("a]: [b"));
        assert_eq!(props.len(), 4);
    }

    #[test]
    fn cpuinfo_x86() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            parse_cpuinfo_model(text).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
    }

    #[test]
    fn cpuinfo_arm_hardware_line() {
        let text = "processor\t: 0\nBogoMIPS\t: 38.40\nCPU implementer\t: 0x41\n\nHardware\t: Qualcomm Technologies, Inc SM8150\n";
        assert_eq!(
            parse_cpuinfo_model(text).as_deref(),
            Some("Qualcomm Technologies, Inc SM8150")
        );
    }

    #[test]
    fn cpuinfo_modern_arm64_has_no_model() {
        let text = "processor\t: 0\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd\nCPU part\t: 0xd05\n";
        assert_eq!(parse_cpuinfo_model(text), None);
        assert_eq!(parse_cpuinfo_model(""), None);
    }

    #[test]
    fn os_release_quotes_and_comments() {
        let text = "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nVERSION_ID=12\nESCAPED=\"a \\\"b\\\" \\$c\"\n\n";
        let f = parse_os_release(text);
        assert_eq!(f["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(f["NAME"], "Debian");
        assert_eq!(f["VERSION_ID"], "12");
        assert_eq!(f["ESCAPED"], "a \"b\" $c");
        assert_eq!(
            os_release_name(&f).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn os_release_name_without_pretty_name() {
        let f = parse_os_release("NAME=Alpine Linux\nVERSION_ID=3.19.1\n");
        assert_eq!(os_release_name(&f).as_deref(), Some("Alpine Linux 3.19.1"));
        assert_eq!(os_release_name(&parse_os_release("")), None);
    }

    #[test]
    fn hashed_id_is_stable_hex_and_hides_input() {
        let a = hash_id("0123456789abcdef0123456789abcdef\n");
        assert_eq!(a, hash_id("0123456789abcdef0123456789abcdef"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!a.contains("0123456789abcdef"));
        assert_ne!(a, hash_id("another"));
    }

    #[test]
    fn os_version_combines_release_and_kernel() {
        let mut h = HostFacts {
            os_release: Some("Android 14".into()),
            kernel_release: Some("5.10.198".into()),
            ..HostFacts::default()
        };
        assert_eq!(
            h.os_version().as_deref(),
            Some("Android 14 (kernel 5.10.198)")
        );
        h.os_release = None;
        assert_eq!(h.os_version().as_deref(), Some("5.10.198"));
        h.kernel_release = None;
        assert_eq!(h.os_version(), None);
    }

    #[test]
    fn missing_files_are_none() {
        assert_eq!(read_trimmed("/nonexistent/gpulut/file"), None);
        assert_eq!(read_dmi("no_such_field_gpulut"), None);
    }

    #[test]
    fn collect_never_fails() {
        let h = collect();
        assert!(!h.os.is_empty());
    }
}
