//! The command line. Nouns first (`gpulut tables get`), like `gh` and `kubectl`, so related
//! commands sit together in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gpulut",
    version,
    about = "Latency tables measured on real phone GPUs, predictions, and architecture searches, from the gpulut server",
    long_about = None,
    after_help = "Exit status: 0 on success, 1 on an error (its message on stderr), 2 on a usage error, \
                  3 when a watched campaign or search ended failed or cancelled."
)]
pub struct Cli {
    /// The gpulut server's base URL.
    #[arg(
        long,
        global = true,
        env = "GPULUT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Bearer token: an API key, or the admin token.
    #[arg(long, global = true, env = "GPULUT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrollment tokens, with which device agents join (admin).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Devices (phones, machines) and their agents.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Latency tables: one per (device, framework) and search space.
    #[command(subcommand)]
    Tables(TablesCommand),
    /// Predict whole architectures' latency from a table.
    Predict(PredictArgs),
    /// Profiling campaigns: the jobs that fill a device's tables.
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
    /// Architecture searches (weighted NSGA-II) over latency tables.
    #[command(subcommand)]
    Search(SearchCommand),
}

/// Print the server's JSON answer (pretty) instead of a table.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an enrollment token and print how to enroll an agent with it.
    Create(TokenCreateArgs),
    /// List enrollment tokens (secrets are never shown again).
    List(JsonFlag),
    /// Revoke an enrollment token: no more agents can enroll with it.
    Revoke {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token is for, e.g. the phone's name.
    #[arg(long, default_value = "gpulut cli")]
    pub label: String,
    /// How many agents may enroll with it (server default: 1).
    #[arg(long)]
    pub max_uses: Option<i32>,
    /// Lifetime in seconds (server default: one day).
    #[arg(long)]
    pub ttl_s: Option<i64>,
    /// Label given to devices that enroll with it (repeatable).
    #[arg(long = "device-label")]
    pub device_labels: Vec<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices with their status.
    List(JsonFlag),
    /// One device: status, fingerprint and agents.
    Show {
        /// Device id (or its name when unique).
        device: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// List latency tables with their coverage and validation.
    List {
        /// Only tables of this search space.
        #[arg(long)]
        space: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a table: one row per block.
    Get {
        #[command(flatten)]
        table: TableArgs,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write a table as the server renders it (JSON, CSV or OFA-style YAML), byte for byte.
    Export {
        #[command(flatten)]
        table: TableArgs,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct TableArgs {
    /// Device id (or its name when unique).
    pub device: String,
    /// Framework, e.g. `wgpu-fused`.
    pub framework: String,
    /// Search space.
    #[arg(long, default_value = "moga-mbv3")]
    pub space: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Json,
    Csv,
    OfaYaml,
}

impl ExportFormat {
    pub fn as_query(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::OfaYaml => "ofa-yaml",
        }
    }
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// Architectures: hex text (`453969358533aa`), JSON (`'{"choices": [0,1,...]}'` or
    /// `'[0,1,...]'`), or a reference name (`MoGA-A`).
    #[arg(required = true, value_name = "ARCH")]
    pub archs: Vec<String>,
    /// Entry statistic summed: median, min, p10 or mean.
    #[arg(long)]
    pub statistic: Option<String>,
    /// Also give the table's calibrated prediction (needs a validation campaign).
    #[arg(long)]
    pub calibrated: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Queue a campaign that measures a device's blocks (admin).
    Create(CampaignCreateArgs),
    /// List campaigns.
    List(JsonFlag),
    /// One campaign's state and progress.
    Show {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Follow a campaign with a progress bar until it ends; exit 3 unless it is done.
    Watch(WatchArgs),
    /// Cancel a campaign's jobs that have not finished.
    Cancel {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct CampaignCreateArgs {
    /// Device id (or its name when unique).
    #[arg(long)]
    pub device: String,
    /// Framework to measure (repeatable; default: every native framework).
    #[arg(long = "framework")]
    pub frameworks: Vec<String>,
    /// Search space.
    #[arg(long, default_value = "moga-mbv3")]
    pub space: String,
    /// Also measure N seeded random architectures end to end, for validation.
    #[arg(long, value_name = "N")]
    pub validation_random: Option<u32>,
    /// Also measure the space's reference networks end to end, for validation.
    #[arg(long)]
    pub references: bool,
    /// Blocks per job.
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Measure blocks again even when the table has fresh entries.
    #[arg(long)]
    pub force: bool,
    /// Timed runs per block at least (timing protocol override).
    #[arg(long)]
    pub min_runs: Option<u32>,
    /// Timed runs per block at most (timing protocol override).
    #[arg(long)]
    pub max_runs: Option<u32>,
    /// Warm-up runs per block (timing protocol override).
    #[arg(long)]
    pub warmup_runs: Option<u32>,
    /// Follow the campaign until it ends, as `campaigns watch` does.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    pub id: String,
    /// Seconds between polls.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print the final status as the server's JSON.
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Start a search (answers at once with its id; --watch to follow it).
    Start(SearchStartArgs),
    /// List searches, newest first.
    List {
        /// Only searches in this state (queued, running, done, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// One search's state, progress and hypervolume.
    Status {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Follow a search with a progress bar until it ends; exit 3 unless it is done.
    Watch(WatchArgs),
    /// Ask a search to stop after its current generation.
    Cancel {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// The Pareto front, fastest first, with the space's reference networks marked.
    Front(FrontArgs),
    /// Plot the front: accuracy against latency, params as colour, references labelled.
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
pub struct SearchStartArgs {
    /// Search space.
    #[arg(long, default_value = "moga-mbv3")]
    pub space: String,
    /// A latency table as DEVICE/FRAMEWORK (repeatable: several phones make a fleet).
    #[arg(long = "table", required = true, value_name = "DEVICE/FRAMEWORK")]
    pub tables: Vec<String>,
    /// Accuracy source: `proxy` (a built-in prior, for demos), an evaluator URL
    /// (`http://...`), or `samples:ID` (a surrogate fitted to uploaded samples).
    #[arg(long, default_value = "proxy")]
    pub accuracy: String,
    /// Members kept each generation.
    #[arg(long, default_value_t = 64)]
    pub population: u32,
    /// Generations, the initial population's included.
    #[arg(long, default_value_t = 40)]
    pub generations: u32,
    /// Same request and seed, same front.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Crowding weights ACCURACY,LATENCY,PARAMS (server default 2,2,1).
    #[arg(long, value_name = "A,L,P")]
    pub weights: Option<String>,
    /// How several tables combine: max or mean.
    #[arg(long)]
    pub combine: Option<String>,
    /// Entry statistic summed: median, min, p10 or mean.
    #[arg(long)]
    pub statistic: Option<String>,
    /// Refuse architectures slower than this (ms).
    #[arg(long)]
    pub max_latency_ms: Option<f64>,
    /// Refuse architectures with more parameters than this.
    #[arg(long)]
    pub max_params: Option<f64>,
    /// Refuse architectures with more multiply-accumulates than this.
    #[arg(long)]
    pub max_macs: Option<f64>,
    /// Follow the search until it ends, as `search watch` does.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch.
    #[arg(long, default_value_t = 0.5)]
    pub interval: f64,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct FrontArgs {
    pub id: String,
    /// Print the server's JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: kind,name,arch,accuracy,latency_ms,params,macs.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    pub id: String,
    /// The image to write; its extension (.svg or .png) picks the format.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Width of the image in pixels.
    #[arg(long, default_value_t = 960)]
    pub width: u32,
    /// Height of the image in pixels.
    #[arg(long, default_value_t = 640)]
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from([
            "gpulut",
            "tables",
            "get",
            "dev",
            "wgpu-fused",
            "--server",
            "http://h:9",
            "--token",
            "t",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.server, "http://h:9");
        assert_eq!(cli.token.as_deref(), Some("t"));
        match cli.command {
            Command::Tables(TablesCommand::Get { table, json }) => {
                assert_eq!(table.space, "moga-mbv3");
                assert!(json.json);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn search_start_needs_a_table() {
        assert!(Cli::try_parse_from(["gpulut", "search", "start"]).is_err());
        let cli = Cli::try_parse_from([
            "gpulut",
            "search",
            "start",
            "--table",
            "d/f",
            "--table",
            "e/f",
            "--weights",
            "2,2,1",
        ])
        .unwrap();
        let Command::Search(SearchCommand::Start(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.tables, ["d/f", "e/f"]);
        assert_eq!((a.population, a.generations, a.seed), (64, 40, 0));
        assert_eq!(a.accuracy, "proxy");
    }
}
