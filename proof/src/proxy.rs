//! A TCP proxy on loopback that stands for the network between agents and the server, so a
//! fault run can cut that network for real: open connections are torn down and new ones are
//! refused (accepted and closed at once, which a client sees as a reset or an early EOF), then
//! forwarding resumes. The agents and the server are unchanged; only the address the agents
//! are given differs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy did, for the fault report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Connections forwarded to the upstream.
    pub forwarded: u64,
    /// Connections accepted and closed at once because the network was cut.
    pub refused: u64,
    /// Open connections torn down by a cut.
    pub torn_down: u64,
    /// Connections dropped because the upstream did not accept (e.g. the server was down).
    pub upstream_failed: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    refused: AtomicU64,
    torn_down: AtomicU64,
    upstream_failed: AtomicU64,
}

/// A running proxy; dropping it stops accepting and tears every connection down.
pub struct Proxy {
    addr: SocketAddr,
    /// `true` while cut. Every connection task watches it, so flipping it reaches them all at
    /// once without a registry of connections.
    cut: watch::Sender<bool>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            cut.clone(),
            counters.clone(),
        ));
        Ok(Proxy {
            addr,
            cut,
            counters,
            accept,
        })
    }

    /// The address clients should use instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for the agents' `--server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Cuts the network: closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut_now(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again after a cut.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Cuts the network for `duration`, then forwards again; returns when forwarding resumed.
    pub async fn cut(&self, duration: Duration) {
        self.cut_now();
        tokio::time::sleep(duration).await;
        self.restore();
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            torn_down: c.torn_down.load(Ordering::Relaxed),
            upstream_failed: c.upstream_failed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connection tasks end when they see the cut; the accept loop is gone, so nothing new
        // comes in.
        self.cut.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    cut: watch::Sender<bool>,
    counters: Arc<Counters>,
) {
    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of descriptors and the like: the client retries; so do we, after a pause.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if *cut.borrow() {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            refuse(client);
            continue;
        }
        let rx = cut.subscribe();
        let counters = counters.clone();
        tokio::spawn(async move {
            forward(client, upstream, rx, counters).await;
        });
    }
}

/// Closes a connection so the peer notices at once: a reset where the platform allows it.
fn refuse(client: TcpStream) {
    reset_on_close(&client);
    drop(client);
}

/// Sets SO_LINGER to zero so closing sends a RST rather than a FIN: to the client a cut
/// network must look like a broken connection, not like a server that answered nothing.
fn reset_on_close(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Resolves when the network is cut (or the proxy is gone). The guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`.
async fn cut_signal(cut: &mut watch::Receiver<bool>) {
    let _ = cut.wait_for(|c| *c).await.map(|_| ());
}

async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut cut: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let connect = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)) => r,
        () = cut_signal(&mut cut) => {
            counters.torn_down.fetch_add(1, Ordering::Relaxed);
            refuse(client);
            return;
        }
    };
    let mut server = match connect {
        Ok(Ok(s)) => s,
        _ => {
            counters.upstream_failed.fetch_add(1, Ordering::Relaxed);
            refuse(client);
            return;
        }
    };
    counters.forwarded.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
        }
        () = cut_signal(&mut cut) => {
            counters.torn_down.fetch_add(1, Ordering::Relaxed);
            reset_on_close(&client);
            reset_on_close(&server);
        }
    }
}
