//! The agent's state directory: its credentials (readable by its user only) and the spool of
//! results waiting for upload. Results are written here before any upload, so a crash, a
//! network loss or a server restart loses nothing: the next start uploads what is spooled.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use gpulut_tables::protocol::{Cadence, ResultUpload};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "this agent is not enrolled (no {0}); run `gpulut-agent enroll --server URL --token TOKEN` first"
    )]
    NotEnrolled(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `enroll` stores and `run` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    pub agent_id: String,
    pub device_id: String,
    pub device_name: String,
    /// The agent's bearer token.
    pub token: String,
    pub cadence: Cadence,
}

/// A spooled upload and the job it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spooled {
    pub job_id: String,
    pub upload: ResultUpload,
}

pub struct StateDir {
    root: PathBuf,
}

const CREDENTIALS: &str = "agent.json";
const SPOOL: &str = "spool";

/// Where state lives when `--state-dir` is not given: `$GPULUT_AGENT_STATE_DIR`, else
/// `/data/local/tmp/gpulut-agent` on Android (where adb pushes the binary), else
/// `$XDG_STATE_HOME/gpulut-agent`, else `$HOME/.local/state/gpulut-agent`, else
/// `./gpulut-agent-state`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GPULUT_AGENT_STATE_DIR") {
        return PathBuf::from(d);
    }
    if cfg!(target_os = "android") {
        return PathBuf::from("/data/local/tmp/gpulut-agent");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("gpulut-agent");
    }
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() && h != "/" => PathBuf::from(h).join(".local/state/gpulut-agent"),
        _ => PathBuf::from("gpulut-agent-state"),
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), private to the user.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}

impl StateDir {
    /// Opens (creating, private to the user) the state directory.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(root.join(SPOOL)).map_err(io(root))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io(root))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn save_credentials(&self, c: &Credentials) -> Result<(), StateError> {
        let path = self.root.join(CREDENTIALS);
        let text = serde_json::to_vec_pretty(c).map_err(|e| StateError::Damaged {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_private(&path, &text)
    }

    pub fn credentials(&self) -> Result<Credentials, StateError> {
        let path = self.root.join(CREDENTIALS);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotEnrolled(path));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_slice(&text).map_err(|e| StateError::Damaged {
            path,
            reason: e.to_string(),
        })
    }

    fn spool_path(&self, job_id: &str, attempt: u32) -> PathBuf {
        // Job ids are UUIDs from the server; keep only safe characters regardless.
        let safe: String = job_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.root.join(SPOOL).join(format!("{safe}-{attempt}.json"))
    }

    /// Stores an upload durably before it is sent.
    pub fn spool(&self, job_id: &str, upload: &ResultUpload) -> Result<PathBuf, StateError> {
        let path = self.spool_path(job_id, upload.attempt);
        let doc = Spooled {
            job_id: job_id.to_string(),
            upload: upload.clone(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| StateError::Damaged {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_private(&path, &bytes)?;
        Ok(path)
    }

    /// Uploads waiting from earlier runs, oldest name first. A damaged file is reported, not
    /// fatal: it is moved aside so it does not block the others.
    pub fn spooled(&self) -> Result<Vec<(PathBuf, Spooled)>, StateError> {
        let dir = self.root.join(SPOOL);
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for p in paths {
            match fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Spooled>(&b).ok())
            {
                Some(s) => out.push((p, s)),
                None => {
                    tracing::warn!(path = %p.display(), "spooled result is unreadable; moved aside");
                    let _ = fs::rename(&p, p.with_extension("damaged"));
                }
            }
        }
        Ok(out)
    }

    /// Forgets an upload the server has answered for good.
    pub fn unspool(&self, path: &Path) -> Result<(), StateError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "gpulut-state-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn credentials_round_trip_and_are_private() {
        let root = temp();
        let s = StateDir::open(&root).unwrap();
        assert!(matches!(s.credentials(), Err(StateError::NotEnrolled(_))));
        let c = Credentials {
            server: "http://127.0.0.1:8080".into(),
            agent_id: "a".into(),
            device_id: "d".into(),
            device_name: "n".into(),
            token: "gpulut_agent_x".into(),
            cadence: Cadence {
                heartbeat_s: 15.0,
                poll_wait_s: 30.0,
                lease_s: 120.0,
            },
        };
        s.save_credentials(&c).unwrap();
        assert_eq!(s.credentials().unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(root.join(CREDENTIALS))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "credentials are readable by their user only"
            );
        }
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn spool_keeps_uploads_until_unspooled() {
        let root = temp();
        let s = StateDir::open(&root).unwrap();
        let upload = ResultUpload {
            attempt: 2,
            lease_id: "l".into(),
            agent_version: "0.1.0".into(),
            timestamps_valid: None,
            results: vec![],
        };
        let p = s.spool("job-1", &upload).unwrap();
        fs::write(root.join(SPOOL).join("zz.json"), b"{not json").unwrap();
        let spooled = s.spooled().unwrap();
        assert_eq!(spooled.len(), 1);
        assert_eq!(spooled[0].1.upload, upload);
        assert!(root.join(SPOOL).join("zz.damaged").exists());
        s.unspool(&p).unwrap();
        assert!(s.spooled().unwrap().is_empty());
        fs::remove_dir_all(root).unwrap();
    }
}
