//! Thermal zones and GPU clock, read from sysfs where an unprivileged process may: heat and
//! DVFS move latency, so every measurement records them at its start and end.
//!
//! Every source is optional (containers hide sysfs, phones restrict some nodes); anything
//! unreadable is left out, never an error.

use std::fs;
use std::path::Path;

use gpulut_tables::wire::{DeviceState, ThermalReading};

/// Clock nodes of common mobile GPUs, relative to the sysfs root, with their unit divisor to
/// MHz: Adreno's kgsl, then any devfreq device that names a GPU.
const KGSL_CLOCKS: &[(&str, f64)] = &[
    ("class/kgsl/kgsl-3d0/gpuclk", 1e6),
    ("class/kgsl/kgsl-3d0/devfreq/cur_freq", 1e6),
    ("kernel/gpu/gpu_clock", 1.0),
];

/// The current state, from `/sys`.
pub fn read() -> DeviceState {
    read_from(Path::new("/sys"))
}

/// The state from a sysfs tree rooted at `sys` (tests point it at a fake tree).
pub fn read_from(sys: &Path) -> DeviceState {
    DeviceState {
        thermal: thermal_zones(&sys.join("class/thermal")),
        gpu_freq_mhz: gpu_freq_mhz(sys),
    }
}

fn thermal_zones(dir: &Path) -> Vec<ThermalReading> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut zones: Vec<(String, ThermalReading)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("thermal_zone") {
                return None;
            }
            let raw: f64 = fs::read_to_string(e.path().join("temp"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let zone = fs::read_to_string(e.path().join("type"))
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| name.clone());
            // Millidegrees almost everywhere; a few drivers report whole degrees.
            let celsius = if raw.abs() > 1000.0 {
                raw / 1000.0
            } else {
                raw
            };
            Some((name, ThermalReading { zone, celsius }))
        })
        .collect();
    // thermal_zone2 before thermal_zone10
    zones.sort_by_key(|(name, _)| {
        name.trim_start_matches("thermal_zone")
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    zones.into_iter().map(|(_, r)| r).collect()
}

fn read_number(path: &Path) -> Option<f64> {
    fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn gpu_freq_mhz(sys: &Path) -> Option<f64> {
    for (node, divisor) in KGSL_CLOCKS {
        if let Some(v) = read_number(&sys.join(node)).filter(|v| *v > 0.0) {
            return Some(v / divisor);
        }
    }
    let entries = fs::read_dir(sys.join("class/devfreq")).ok()?;
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let n = n.to_ascii_lowercase();
            ["gpu", "mali", "kgsl", "g3d", "sgpu"]
                .iter()
                .any(|k| n.contains(k))
        })
        .collect();
    names.sort();
    names.iter().find_map(|n| {
        read_number(&sys.join("class/devfreq").join(n).join("cur_freq"))
            .filter(|v| *v > 0.0)
            .map(|hz| hz / 1e6)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn temp_root(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gpulut-thermal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_zones_in_order_and_mali_devfreq() {
        let root = temp_root("mali");
        write(&root, "class/thermal/thermal_zone10/temp", "51000\n");
        write(&root, "class/thermal/thermal_zone10/type", "gpu-thermal\n");
        write(&root, "class/thermal/thermal_zone2/temp", "38500\n");
        write(&root, "class/thermal/thermal_zone3/temp", "garbage\n");
        write(&root, "class/thermal/cooling_device0/cur_state", "1\n");
        write(&root, "class/devfreq/13000000.mali/cur_freq", "848000000\n");
        let s = read_from(&root);
        assert_eq!(s.thermal.len(), 2);
        assert_eq!(s.thermal[0].zone, "thermal_zone2");
        assert_eq!(s.thermal[0].celsius, 38.5);
        assert_eq!(s.thermal[1].zone, "gpu-thermal");
        assert_eq!(s.gpu_freq_mhz, Some(848.0));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn adreno_clock_and_missing_sysfs() {
        let root = temp_root("adreno");
        write(&root, "class/kgsl/kgsl-3d0/gpuclk", "585000000\n");
        assert_eq!(read_from(&root).gpu_freq_mhz, Some(585.0));
        let _ = fs::remove_dir_all(&root);
        let nothing = read_from(Path::new("/nonexistent/sys"));
        assert!(nothing.thermal.is_empty() && nothing.gpu_freq_mhz.is_none());
    }
}
