//! The command line, declared here rather than in `main.rs` so tests and later commands
//! share one definition.

use clap::{Args, Parser, Subcommand};

use crate::bench::Fault;
use crate::framework::Framework;
use crate::gpu::BackendChoice;

/// The gpulut device agent: describes this device's GPU and times neural-network blocks on it.
#[derive(Debug, Parser)]
#[command(name = "gpulut-agent", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the device fingerprint and GPU capabilities (adapter, limits, features).
    Info(InfoArgs),
    /// Verify and time blocks or whole architectures on this GPU, with no server.
    ///
    /// Every block's GPU output is first compared with the CPU reference on seeded random
    /// weights and input; a block that does not match is reported as failed and not timed.
    /// Flags that mean the same as TFLite's benchmark_model have its names.
    Bench(BenchArgs),
    /// Enroll this device with a server: exchanges an enrollment token (from an admin) and
    /// this device's fingerprint for agent credentials, stored in the state directory.
    Enroll(EnrollArgs),
    /// Work for the server: heartbeat, take profiling jobs, verify and time them on this GPU,
    /// upload the results. Survives network loss and server restarts; Ctrl-C gives the
    /// current job back.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8080 (on a phone, after
    /// `adb reverse tcp:8080 tcp:8080`).
    #[arg(long)]
    pub server: String,
    /// The enrollment token an admin created (POST /v1/enrollment-tokens).
    #[arg(long, env = "GPULUT_ENROLLMENT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A name for this device (default: its model, or its GPU's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where credentials and spooled results live.
    #[arg(long)]
    pub state_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where `enroll` stored the credentials.
    #[arg(long)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Exit once the server has no job for this device (for scripts that run one campaign).
    #[arg(long)]
    pub until_idle: bool,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// `--framework all`: every one of our kernel sets.
pub const ALL_KERNELS: &str = "all";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Search space whose blocks are measured; without --block or --arch, all its distinct
    /// blocks (stem, every choice at every layer shape, head).
    #[arg(long, default_value = "moga-mbv3")]
    pub space: String,
    /// Measure this block (its canonical key); repeatable.
    #[arg(long = "block", value_name = "KEY")]
    pub blocks: Vec<String>,
    /// Measure this architecture end to end (hex form, reference name such as MoGA-A or
    /// MobileNetV3-Large, or JSON form); repeatable.
    #[arg(long = "arch", value_name = "ARCH")]
    pub archs: Vec<String>,
    /// Measure every block of this architecture on its own (each distinct block once);
    /// repeatable. With --arch on the same network, shows how well blocks add up.
    #[arg(long = "blocks_of", value_name = "ARCH")]
    pub blocks_of: Vec<String>,
    /// Frameworks to measure with, comma-separated or repeated: our kernel sets `wgpu-direct`
    /// and `wgpu-fused` (`all`: both), or an adapter's such as `ncnn-vulkan`, `ncnn-cpu` or
    /// `onnxruntime-cpu` (`gpulut-agent info` lists them and what is missing).
    #[arg(long, value_delimiter = ',', default_value = ALL_KERNELS)]
    pub framework: Vec<String>,
    /// Warm-up runs per block before timing.
    #[arg(long = "warmup_runs", default_value_t = 10)]
    pub warmup_runs: u32,
    /// Warm-up also lasts at least this many seconds per block.
    #[arg(long = "warmup_min_secs", default_value_t = 0.2)]
    pub warmup_min_secs: f64,
    /// Minimum timed runs per block; timing continues until the median's 95% CI is within
    /// --target_ci of it.
    #[arg(long = "num_runs", default_value_t = 30)]
    pub num_runs: u32,
    /// Maximum timed runs per block.
    #[arg(long = "max_runs", default_value_t = 300)]
    pub max_runs: u32,
    /// Maximum seconds of timed runs per block.
    #[arg(long = "max_secs", default_value_t = 10.0)]
    pub max_secs: f64,
    /// Target half-width of the median's 95% confidence interval, relative to the median.
    #[arg(long = "target_ci", default_value_t = 0.02)]
    pub target_ci: f64,
    /// Seed of the random weights and inputs and of the shuffled run order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time with the wall clock (submit to completion) even where GPU timestamps exist.
    #[arg(long = "no_timestamps")]
    pub no_timestamps: bool,
    /// Print one JSON document (the fingerprint, the protocol and one result per block or
    /// architecture and framework, with raw samples).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV, one row per result.
    #[arg(long)]
    pub csv: bool,
    /// Test hook: make the GPU compute something other than the reference, to prove that
    /// verification catches it.
    #[arg(long = "inject_fault", value_enum, hide = true)]
    pub inject_fault: Option<Fault>,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

impl BenchArgs {
    /// The framework names asked for, `all` expanded, each once, in order.
    pub fn framework_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for f in &self.framework {
            let f = f.trim();
            let expanded: Vec<String> = if f == ALL_KERNELS {
                Framework::ALL.iter().map(|k| k.name().to_owned()).collect()
            } else {
                vec![f.to_owned()]
            };
            for n in expanded {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names
    }
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// GPU selection, shared by every command that opens the GPU.
#[derive(Debug, Clone, Args)]
pub struct GpuArgs {
    /// Graphics API to use; `all` prefers Vulkan, then Metal, then DX12, then GL.
    #[arg(long, value_enum, default_value_t = BackendChoice::All, env = "GPULUT_BACKEND")]
    pub backend: BackendChoice,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn info_defaults_and_flags() {
        let cli = Cli::try_parse_from(["gpulut-agent", "info"]).expect("parses");
        let Command::Info(args) = cli.command else {
            panic!("not info")
        };
        assert!(!args.json);
        // The default may be overridden by GPULUT_BACKEND in the environment; only check it
        // when the variable is unset.
        if std::env::var_os("GPULUT_BACKEND").is_none() {
            assert_eq!(args.gpu.backend, BackendChoice::All);
        }

        let cli = Cli::try_parse_from(["gpulut-agent", "info", "--json", "--backend", "vulkan"])
            .expect("parses");
        let Command::Info(args) = cli.command else {
            panic!("not info")
        };
        assert!(args.json);
        assert_eq!(args.gpu.backend, BackendChoice::Vulkan);
    }

    #[test]
    fn bench_flags_use_benchmark_model_names() {
        let cli = Cli::try_parse_from([
            "gpulut-agent",
            "bench",
            "--arch",
            "MoGA-A",
            "--arch",
            "MoGA-B",
            "--block",
            "gap-i7x7x960",
            "--num_runs",
            "3",
            "--warmup_runs",
            "1",
            "--max_secs",
            "5",
            "--framework",
            "wgpu-fused",
            "--json",
        ])
        .expect("parses");
        let Command::Bench(b) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(b.archs, ["MoGA-A", "MoGA-B"]);
        assert_eq!(b.blocks, ["gap-i7x7x960"]);
        assert_eq!((b.num_runs, b.warmup_runs, b.max_secs), (3, 1, 5.0));
        assert_eq!(b.framework_names(), ["wgpu-fused"]);
        assert!(b.json && !b.csv);
        assert!(
            Cli::try_parse_from(["gpulut-agent", "bench", "--json", "--csv"]).is_err(),
            "--json and --csv conflict"
        );
        let Command::Bench(d) = Cli::try_parse_from(["gpulut-agent", "bench"])
            .unwrap()
            .command
        else {
            panic!("not bench")
        };
        assert_eq!(d.space, "moga-mbv3");
        assert_eq!(d.framework_names(), ["wgpu-direct", "wgpu-fused"]);
        let Command::Bench(e) = Cli::try_parse_from([
            "gpulut-agent",
            "bench",
            "--framework",
            "ncnn-vulkan,onnxruntime-cpu",
            "--framework",
            "all",
        ])
        .unwrap()
        .command
        else {
            panic!("not bench")
        };
        assert_eq!(
            e.framework_names(),
            [
                "ncnn-vulkan",
                "onnxruntime-cpu",
                "wgpu-direct",
                "wgpu-fused"
            ]
        );
        assert_eq!((d.warmup_runs, d.num_runs), (10, 30));
    }

    #[test]
    fn unknown_backend_is_rejected() {
        assert!(Cli::try_parse_from(["gpulut-agent", "info", "--backend", "opencl"]).is_err());
    }
}
