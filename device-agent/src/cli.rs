//! The command line, declared here rather than in `main.rs` so tests and later commands
//! share one definition.

use clap::{Args, Parser, Subcommand};

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
        let Command::Info(args) = cli.command;
        assert!(!args.json);
        // The default may be overridden by GPULUT_BACKEND in the environment; only check it
        // when the variable is unset.
        if std::env::var_os("GPULUT_BACKEND").is_none() {
            assert_eq!(args.gpu.backend, BackendChoice::All);
        }

        let cli = Cli::try_parse_from(["gpulut-agent", "info", "--json", "--backend", "vulkan"])
            .expect("parses");
        let Command::Info(args) = cli.command;
        assert!(args.json);
        assert_eq!(args.gpu.backend, BackendChoice::Vulkan);
    }

    #[test]
    fn unknown_backend_is_rejected() {
        assert!(Cli::try_parse_from(["gpulut-agent", "info", "--backend", "opencl"]).is_err());
    }
}
