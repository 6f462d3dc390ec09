//! The test run's PostgreSQL server, and catalogs on either backend for suites that run
//! once per backend.
//!
//! `./run test` starts one private server for the whole run (`images/postgres.sh`) and
//! names it in `COLDPATCH_TEST_PG` ("socket-dir port"); every test that needs PostgreSQL
//! makes its own database on it, so tests run in parallel without seeing each other.
//! Without the variable, a test [`skip`](crate::skip)s (a failure in CI).

use std::path::{Path, PathBuf};

use coldpatch_catalog::{Catalog, Location};

/// The server `COLDPATCH_TEST_PG` names.
#[derive(Debug, Clone)]
pub struct Server {
    pub socket_dir: String,
    pub port: u16,
}

/// The run's server, or `None` after a skip.
pub fn server() -> Option<Server> {
    let Some(v) = std::env::var("COLDPATCH_TEST_PG")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        crate::skip(
            "no test PostgreSQL server: `./run test` starts one, or run \
             `images/postgres.sh start DIR` and set COLDPATCH_TEST_PG=\"DIR PORT\"",
        );
        return None;
    };
    let (dir, port) = v
        .split_once(' ')
        .expect("COLDPATCH_TEST_PG is \"DIR PORT\"");
    Some(Server {
        socket_dir: dir.to_string(),
        port: port.parse().expect("COLDPATCH_TEST_PG port"),
    })
}

impl Server {
    /// A URL of database `db` over the unix socket, as the superuser `coldpatch`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://coldpatch@/{db}?host={}&port={}",
            self.socket_dir, self.port
        )
    }

    /// A URL of database `db` over loopback TCP, with a password.
    pub fn tcp_url(&self, db: &str, password: &str) -> String {
        format!(
            "postgres://coldpatch:{password}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Runs SQL statements on database `db`.
    pub fn sql(&self, db: &str, sql: &str) {
        let mut c = postgres::Client::connect(&self.url(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The rows of a query of one text column.
    pub fn query(&self, db: &str, sql: &str) -> Vec<String> {
        let mut c = postgres::Client::connect(&self.url(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        c.query(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }

    /// Waits (up to 10 s) until `n` coldpatch connections to `db` wait on a lock, as a
    /// test holding a row lock expects of the writers it started; returns how many do.
    pub fn lock_waiters(&self, db: &str, n: u32) -> u32 {
        let mut waiting = 0;
        for _ in 0..500 {
            waiting = self.query(
                db,
                "SELECT count(*)::text FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'coldpatch' \
                 AND wait_event_type = 'Lock'",
            )[0]
            .parse()
            .expect("count");
            if waiting >= n {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        waiting
    }

    /// A new, empty database; returns its name.
    pub fn database(&self) -> String {
        let name = format!("t_{}", uuid_like());
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which backend a test catalog is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sled,
    Postgres,
}

/// A catalog a test may open, close and open again: a sled directory, or a fresh
/// PostgreSQL database with a state directory.
pub struct TestCatalog {
    pub kind: Kind,
    dir: tempfile::TempDir,
    /// The server and database of a PostgreSQL catalog.
    db: Option<(Server, String)>,
}

impl TestCatalog {
    /// A new, empty catalog on `kind`; `None` after a skip.
    pub fn new(kind: Kind) -> Option<TestCatalog> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = match kind {
            Kind::Sled => None,
            Kind::Postgres => {
                let s = server()?;
                let name = s.database();
                Some((s, name))
            }
        };
        Some(TestCatalog { kind, dir, db })
    }

    /// What `--catalog` takes for it.
    pub fn location(&self) -> String {
        match &self.db {
            Some((s, name)) => s.url(name),
            None => self.sled_dir().display().to_string(),
        }
    }

    /// The server and database of a PostgreSQL catalog.
    pub fn postgres(&self) -> Option<(&Server, &str)> {
        self.db.as_ref().map(|(s, n)| (s, n.as_str()))
    }

    fn sled_dir(&self) -> PathBuf {
        self.dir.path().join("catalog")
    }

    /// Its state directory.
    pub fn state_dir(&self) -> PathBuf {
        match self.kind {
            Kind::Sled => self.sled_dir(),
            Kind::Postgres => self.dir.path().join("state"),
        }
    }

    /// A scratch directory that lives as long as the catalog.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    pub fn open(&self) -> Catalog {
        let at = Location::parse(&self.location()).expect("location");
        Catalog::connect(&at, Some(&self.state_dir())).expect("open the test catalog")
    }
}

/// Runs a test body once per backend: `both!(name, |tc: &TestCatalog| { … })` makes
/// `name::sled` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sled() {
                let f: fn(&$crate::pg::TestCatalog) = $body;
                let tc = $crate::pg::TestCatalog::new($crate::pg::Kind::Sled).expect("sled");
                f(&tc);
            }
            #[test]
            fn postgres() {
                let f: fn(&$crate::pg::TestCatalog) = $body;
                if let Some(tc) = $crate::pg::TestCatalog::new($crate::pg::Kind::Postgres) {
                    f(&tc);
                }
            }
        }
    };
}

/// A PostgreSQL server of a test's own (`images/postgres.sh` in a temporary directory),
/// for the one that restarts it under running workers; stopped when dropped.
pub struct OwnServer {
    pub server: Server,
    dir: tempfile::TempDir,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        let dir = tempfile::tempdir().expect("tempdir");
        // The server runs as nobody under root: the directory must be reachable.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let out = Self::script(&["start", &dir.path().join("pg").display().to_string()]);
        let text = String::from_utf8_lossy(&out.stdout);
        let (socket_dir, port) = text.trim().split_once(' ').expect("DIR PORT");
        let server = Server {
            socket_dir: socket_dir.to_string(),
            port: port.parse().expect("port"),
        };
        OwnServer { server, dir }
    }

    fn script(args: &[&str]) -> std::process::Output {
        let out = std::process::Command::new("bash")
            .arg(crate::root().join("images/postgres.sh"))
            .args(args)
            .output()
            .expect("run images/postgres.sh");
        assert!(
            out.status.success(),
            "postgres.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn pg_dir(&self) -> String {
        self.dir.path().join("pg").display().to_string()
    }

    /// Kills the server (as a crash would), keeps it down `secs`, starts it again.
    pub fn restart(&self, secs: u32) {
        Self::script(&["restart", &self.pg_dir(), &secs.to_string()]);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(crate::root().join("images/postgres.sh"))
            .args(["stop", &self.pg_dir()])
            .output();
    }
}
