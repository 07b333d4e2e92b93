//! Child processes of a fault run (servers, search workers, simulated agents), owned by guards
//! that SIGKILL them when dropped: a failed or interrupted run must never leave a server or a
//! fleet of agents behind. Their stdout and stderr go to a log file each, which the run reads
//! back (the worker's "resuming from checkpoint" line) and points at when something fails.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A running child process; SIGKILLed on drop unless it already exited.
pub struct Proc {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
    started: Instant,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log` (created with its parents).
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let name = name.into();
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the log directory {}", dir.display()))?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited before it could be watched"))?;
        Ok(Proc {
            name,
            child,
            pid,
            log: log.to_path_buf(),
            started: Instant::now(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The exit status when the process has ended, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL (no chance to clean up: that is the fault being injected) and reap.
    pub async fn sigkill(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(s) = self.exited() {
            bail!("{} had already exited ({s}) before SIGKILL", self.name);
        }
        self.child
            .start_kill()
            .with_context(|| format!("SIGKILL {}", self.name))?;
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .with_context(|| format!("{} did not die after SIGKILL", self.name))?
            .with_context(|| format!("reaping {}", self.name))
    }

    /// SIGTERM, then SIGKILL when it is still running after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(s) = self.exited() {
            return Ok(s);
        }
        // std has no portable SIGTERM; kill(1) is on every Unix this runs on.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(s) => Ok(s?),
            Err(_) => {
                self.child.start_kill()?;
                Ok(self.child.wait().await?)
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "{} still running after {:.0} s",
                    self.name,
                    timeout.as_secs_f64()
                )
            })?
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // kill_on_drop also does this; doing it here makes the guarantee visible and immediate.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.start_kill();
        }
    }
}

/// The last `lines` lines of a file ("" when unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; a race with another
/// process is possible but harmless here: the server's start then fails loudly).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Runs `sh -c CMD` to completion (the Postgres restart); fails with its output on error.
pub async fn run_shell(cmd: &str, timeout: Duration) -> anyhow::Result<()> {
    let out = tokio::time::timeout(
        timeout,
        Command::new("sh")
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("`{cmd}` did not finish in {:.0} s", timeout.as_secs_f64()))?
    .with_context(|| format!("running `{cmd}`"))?;
    if !out.status.success() {
        bail!(
            "`{cmd}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `127.0.0.1:PORT`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
