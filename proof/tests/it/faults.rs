//! The fault tools themselves: the proxy that cuts the network, on real sockets; and the
//! cheapest fault scenario (agents SIGKILLed while holding leases) end to end with the real
//! server binary, real Postgres and `gpulut-proof agents` processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gpulut_proof::proxy::Proxy;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers every chunk it reads with the chunk upper-cased, so a test can tell
/// which way bytes went; counts the connections it accepted.
async fn upper_echo() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let up = buf[..n].to_ascii_uppercase();
                            if s.write_all(&up).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Sends `msg` and reads the answer of the same length.
async fn exchange(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .map_err(|_| std::io::Error::other("no answer within 5 s"))??;
    Ok(got)
}

/// True when the peer closed or reset the connection (read gives EOF or an error) within 2 s.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// True when a new connection is refused: the connect itself fails (the reset can beat the
/// handshake's end on loopback), or the connection is closed before it carries anything.
async fn refused(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return true;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\n\r\n").await;
    closed_by_peer(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_forwards_both_ways_and_a_cut_closes_refuses_then_recovers() {
    let (upstream, accepted) = upper_echo().await;
    let proxy = Arc::new(Proxy::start(upstream).await.unwrap());
    assert_ne!(proxy.addr(), upstream);

    // Both ways, several round trips on one connection.
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        exchange(&mut open, b"lease job 1").await.unwrap(),
        b"LEASE JOB 1"
    );
    assert_eq!(exchange(&mut open, b"upload").await.unwrap(), b"UPLOAD");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // The cut tears the open connection down and refuses new ones for its duration.
    let cut_for = Duration::from_millis(1500);
    let started = Instant::now();
    let cutter = {
        let p = proxy.clone();
        tokio::spawn(async move { p.cut(cut_for).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(proxy.is_cut());
    assert!(
        closed_by_peer(&mut open).await,
        "an open connection survived the cut"
    );
    assert!(
        refused(proxy.addr()).await,
        "a connection made during the cut was not refused"
    );
    assert!(
        started.elapsed() < cut_for,
        "the checks must run inside the cut"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "nothing reached the upstream during the cut"
    );

    // After the cut, forwarding works again.
    cutter.await.unwrap();
    assert!(started.elapsed() >= cut_for);
    assert!(!proxy.is_cut());
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        exchange(&mut after, b"retry upload").await.unwrap(),
        b"RETRY UPLOAD"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 2, "{stats:?}");
    assert!(stats.refused >= 1, "{stats:?}");
    assert!(stats.torn_down >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_drops_clients_when_the_upstream_is_down() {
    // A port with nothing behind it: bind, read the port, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(dead).await.unwrap();
    assert!(refused(proxy.addr()).await);
    assert_eq!(proxy.stats().upstream_failed, 1);
}

/// The server binary next to ours: cargo builds every workspace binary for `cargo test
/// --workspace`, but not another package's binary for `-p gpulut-proof`.
fn server_binary() -> Option<PathBuf> {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_gpulut-proof"));
    let server = ours.with_file_name(format!("gpulut-server{}", std::env::consts::EXE_SUFFIX));
    server.is_file().then_some(server)
}

/// agents-killed end to end (about 10 s): the agents' process is SIGKILLed while it holds
/// leases, started again; the leases run out, the jobs go out again with the next attempt, and
/// every series is stored exactly once.
#[test]
fn agents_killed_mid_job_lose_and_double_nothing() {
    // The test command builds the server first (scripts/test); a missing binary or database is
    // a broken set-up, not a reason to pass.
    let server = server_binary().expect(
        "no gpulut-server binary next to gpulut-proof: run the tests with ./scripts/test, which builds it",
    );
    let database_url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with ./scripts/test, which starts a throwaway Postgres",
    );
    let out = std::env::temp_dir().join(format!("gpulut-faults-{}", uuid::Uuid::new_v4().simple()));
    let started = Instant::now();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_gpulut-proof"))
        .arg("faults")
        .arg("--server-bin")
        .arg(&server)
        .args(["--database-url", &database_url])
        .arg("--out")
        .arg(&out)
        .args(["--only", "agents-killed"])
        .args([
            "--agents",
            "2",
            "--devices",
            "2",
            "--blocks",
            "24",
            "--batch-size",
            "2",
        ])
        .args(["--work-ms", "400", "--lease-s", "2", "--trigger", "0.25"])
        .args(["--scenario-timeout-s", "120"])
        .output()
        .expect("run gpulut-proof faults");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("faults.json")).unwrap_or_else(|e| {
            panic!(
                "no faults.json ({e}); stderr:\n{}",
                String::from_utf8_lossy(&run.stderr)
            )
        }),
    )
    .unwrap();
    let s = &report["scenarios"][0];
    assert!(
        run.status.success(),
        "faults failed: {}\n{}",
        serde_json::to_string_pretty(s).unwrap(),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(s["scenario"], "agents-killed");
    assert_eq!(s["passed"], true);
    // 24 blocks on each of 2 devices, every one stored once: the numbers are the database's,
    // not the agents'.
    assert_eq!(s["expected"], 48);
    assert_eq!(s["stored"], 48);
    assert_eq!(s["after"], 48);
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["lost"], 0);
    assert!(
        s["before"].as_i64().unwrap() < 48,
        "the kill came mid-campaign"
    );
    assert!(s["counts"]["jobs_reissued"].as_i64().unwrap() >= 1);
    assert!(s["detail"]["leases_held_at_kill"].as_i64().unwrap() >= 1);
    assert_eq!(s["counts"]["samples"], 48 * 30);
    let md = std::fs::read_to_string(out.join("faults.md")).unwrap();
    assert!(md.contains("| agents-killed |"), "{md}");
    eprintln!(
        "agents-killed: {} s",
        started.elapsed().as_secs_f64().round()
    );
    let _ = std::fs::remove_dir_all(&out);
}
