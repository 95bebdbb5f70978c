//! Real PostgreSQL and S3-compatible servers for the scale-out conformance runs, started by the
//! test on loopback ports in temporary directories and stopped when dropped.
//!
//! - PostgreSQL: `initdb` + `pg_ctl` from `PATH` or `/usr/lib/postgresql/<v>/bin`. As root they
//!   run as the `postgres` user (or `nobody`) through `runuser`, since PostgreSQL refuses root.
//! - S3: moto's server mode (`moto_server`, PyPI `moto[server]`), from `OPENKVS_MOTO_SERVER`,
//!   the workspace's `.venv/bin`, or `PATH`.
//!
//! Missing binaries make [`Servers::start`] print a loud SKIP and return `None`, unless
//! `OPENKVS_REQUIRE_SCALEOUT=1` (tests/run.sh sets it), where they fail the test.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    if let Some(p) = which(name) {
        return Some(p);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn moto_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPENKVS_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    which("moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(uid, gid)` of the first of `names` in /etc/passwd.
fn lookup_user(names: &[&str]) -> Option<(String, u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    for want in names {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3 && f[0] == *want {
                return Some((want.to_string(), f[2].parse().ok()?, f[3].parse().ok()?));
            }
        }
    }
    None
}

fn is_root() -> bool {
    // The owner of /proc/self is our effective uid.
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("procfs")) == 0
}

/// A running PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    run_as: Option<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Postgres {
    fn command(&self, program: &Path) -> Command {
        command_as(self.run_as.as_deref(), program)
    }

    /// `postgres://` URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=5",
            self.port
        )
    }

    /// Stops the server (fast shutdown), as in a PostgreSQL restart.
    pub fn stop(&self) {
        let status = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl stop");
        assert!(status.success(), "pg_ctl stop: {status}");
    }

    /// Starts the (stopped) server again on the same port.
    pub fn start(&self) {
        let dir = self.dir.path();
        let status = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                self.port,
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        if !status.success() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            panic!("pg_ctl start: {status}\n{log}");
        }
    }
}

fn command_as(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A running moto S3 server with one bucket.
pub struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The bucket the store uses.
    pub bucket: String,
}

impl S3Server {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PostgreSQL + S3, both started by the test.
pub struct Servers {
    /// PostgreSQL.
    pub pg: Postgres,
    /// S3.
    pub s3: S3Server,
}

#[cfg(feature = "s3")]
impl Servers {
    /// Store options for the test S3 server (its fixed test keys), its bucket created.
    /// `attempt_timeout`: per S3 attempt (`None`: the store's default).
    pub async fn s3_options(&self, attempt_timeout: Option<Duration>) -> openkvs_store::S3Options {
        let mut s3 = openkvs_store::S3Options::new(
            self.s3.bucket.clone(),
            Some(self.s3.endpoint()),
            "test-key",
            "test-secret",
        );
        if let Some(t) = attempt_timeout {
            s3.attempt_timeout = t;
        }
        s3.client()
            .create_bucket()
            .bucket(&self.s3.bucket)
            .send()
            .await
            .expect("create the test bucket");
        s3
    }
}

fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("OPENKVS_REQUIRE_SCALEOUT").as_deref() == Ok("1") {
        panic!("OPENKVS_REQUIRE_SCALEOUT=1 but {what} is not installed");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("SKIPPED: the scale-out backend test needs {what}, which is not installed.");
    eprintln!("tests/run.sh installs it; this run did NOT test PostgreSQL + S3.");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    None
}

impl Postgres {
    /// Starts PostgreSQL alone, or returns `None` (after saying so loudly) if it is missing.
    pub fn start_new() -> Option<Self> {
        let (Some(initdb), Some(pg_ctl)) = (pg_bin("initdb"), pg_bin("pg_ctl")) else {
            return missing("PostgreSQL (initdb, pg_ctl)");
        };
        Some(start_postgres(&initdb, &pg_ctl))
    }
}

impl Servers {
    /// Starts both, or returns `None` (after saying so loudly) if a binary is missing.
    pub fn start() -> Option<Self> {
        let (Some(initdb), Some(pg_ctl)) = (pg_bin("initdb"), pg_bin("pg_ctl")) else {
            return missing("PostgreSQL (initdb, pg_ctl)");
        };
        let Some(moto) = moto_bin() else {
            return missing("moto_server (pip install 'moto[server]')");
        };
        let pg = start_postgres(&initdb, &pg_ctl);
        let s3 = start_moto(&moto);
        Some(Self { pg, s3 })
    }
}

fn start_postgres(initdb: &Path, pg_ctl: &Path) -> Postgres {
    let dir = tempfile::Builder::new()
        .prefix("openkvs-pg-")
        .tempdir()
        .expect("temp dir");
    let run_as = if is_root() {
        let (name, uid, gid) =
            lookup_user(&["postgres", "nobody"]).expect("a postgres or nobody user to run as");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the pg dir");
        Some(name)
    } else {
        None
    };
    let status = command_as(run_as.as_deref(), initdb)
        .arg("-D")
        .arg(dir.path().join("data"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(status.success(), "initdb: {status}");
    let pg = Postgres {
        dir,
        pg_ctl: pg_ctl.to_owned(),
        run_as,
        port: free_port(),
    };
    pg.start();
    pg
}

fn start_moto(moto: &Path) -> S3Server {
    let port = free_port();
    let mut child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", moto.display()));
    wait_for_port(port, "moto_server", &mut child);
    S3Server {
        child,
        port,
        bucket: "openkvs-test".into(),
    }
}
