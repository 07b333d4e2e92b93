//! One error type for everything the CLI can run into, each variant worded for the person at
//! the terminal: the server's own problem document when it sent one, else what to check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an RFC 9457 problem: its title and detail are the message,
    /// because the server already words them for people.
    #[error("{title}: {detail}{hint}")]
    Problem {
        status: u16,
        title: String,
        detail: String,
        code: Option<String>,
        /// Extra advice the server cannot know (e.g. that no token was given at all).
        hint: String,
    },
    /// A failure answer that is not problem+json (a proxy in between, an old server).
    #[error("the server answered {status} to {what}: {body}")]
    Http {
        status: u16,
        what: String,
        body: String,
    },
    #[error(
        "cannot reach the gpulut server at {server}: {cause} (is it running? set --server or GPULUT_SERVER)"
    )]
    Connect { server: String, cause: String },
    #[error("invalid server URL `{0}`: use http://HOST:PORT (https needs the CLI's `tls` feature)")]
    BadUrl(String),
    /// A 2xx answer the CLI cannot read: a server of another version, most likely.
    #[error("unexpected answer to {what}: {cause}")]
    Decode { what: String, cause: String },
    /// The command line is well formed but its values are not.
    #[error("{0}")]
    Input(String),
    #[error("cannot write {}: {cause}", path.display())]
    Write { path: PathBuf, cause: String },
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    #[error("cannot write to standard output: {0}")]
    Stdout(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status of a server refusal, for callers that react to some (403 -> fewer
    /// details instead of failing).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Problem { status, .. } | Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
