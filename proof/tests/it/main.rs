//! Integration tests of gpulut-proof against the real server (in-process, fresh database).
//! `./scripts/test -p gpulut-proof` starts a throwaway Postgres and exports DATABASE_URL.

mod agents;
mod faults;
mod load;

use gpulut_server::app::{self, Settings};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

pub const ADMIN_TOKEN: &str = "proof-admin-token-0123456789";
/// Short long polls and leases, so a test's agents stop within seconds.
pub const CADENCE: gpulut_tables::protocol::Cadence = gpulut_tables::protocol::Cadence {
    heartbeat_s: 1.0,
    poll_wait_s: 1.0,
    lease_s: 5.0,
};

pub struct App {
    pub base: String,
    pub database_url: String,
}

/// Creates an empty database in the test Postgres and returns its URL.
pub async fn fresh_database() -> String {
    let admin = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with ./scripts/test, which starts a throwaway Postgres",
    );
    let name = format!("gpulut_proof_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the test Postgres");
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a test database");
    let base = admin.split_once('?').map_or(admin.as_str(), |(b, _)| b);
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{server}/{name}")
}

/// Starts the real server on 127.0.0.1 port 0 against a fresh database, in this process.
pub async fn spawn_app() -> App {
    let database_url = fresh_database().await;
    let settings = Settings {
        database_url: database_url.clone(),
        admin_token: Some(ADMIN_TOKEN.to_string()),
        max_body_bytes: 4 * 1024 * 1024,
        db_max_connections: 16,
        cadence: CADENCE,
    };
    let state = app::prepare(&settings).await.expect("server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app::serve(
        listener,
        app::router(state, settings.max_body_bytes),
        std::future::pending(),
    ));
    App {
        base: format!("http://{addr}"),
        database_url,
    }
}
