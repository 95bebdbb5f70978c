//! The scale-out backends for a benchmark, as private child processes: a PostgreSQL cluster
//! (`initdb` into a temp dir, `postgres` on a spare loopback port), an S3-compatible server
//! (moto or s3s-fs) with one bucket, and a redis-server (`hub = "redis"`). Each is stopped and
//! its temp dir removed when dropped, also when the benchmark fails half-way.
//!
//! PostgreSQL refuses to run as root, so as root both `initdb` and `postgres` run as the
//! `postgres` user (else `nobody`), like `tests/e2e/test_scaleout.py`. Its data lives under the
//! system temp dir because the benchmark's own data dir may sit below a directory that user
//! cannot enter.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::http::{self, Target};

/// Bucket the S3 store writes to.
pub const BUCKET: &str = "openkvs-bench";
/// Access key id of the S3 servers started here.
pub const S3_AKID: &str = "AKIDS3BENCH";
/// Its secret.
pub const S3_SECRET: &str = "s3-bench-secret";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listening(addr: &str, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} before listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on {addr} within 30 s")
}

/// Sends `signal` (a `kill` name such as `QUIT`) to `child`, waits up to `grace`, then kills.
fn stop(child: &mut Child, signal: &str, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A fresh directory under the system temp dir.
fn temp_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `(uid, gid)` of the first of `names` in `/etc/passwd`.
fn user_ids(names: &[&str]) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for name in names {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3 && f[0] == *name {
                return Ok((f[2].parse()?, f[3].parse()?));
            }
        }
    }
    bail!("none of the users {names:?} exists (PostgreSQL cannot run as root)")
}

fn is_root() -> bool {
    // The owner of our own /proc entry is our effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The directory holding `initdb` and `postgres`: `explicit`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian does not put them on `PATH`).
pub fn find_pg_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL not found under /usr/lib/postgresql (pass --pg-bin)")?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .context("no /usr/lib/postgresql/<version>/bin/postgres (pass --pg-bin)")
}

/// A private PostgreSQL server (trust authentication on loopback only, default durability:
/// `fsync` and `synchronous_commit` on, like a production catalog).
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
}

impl Postgres {
    /// Runs `initdb` into a temp dir and starts `postgres` on a spare loopback port.
    pub fn start(bin: &Path) -> anyhow::Result<Postgres> {
        let dir = temp_dir("openkvs-bench-pg")?;
        let ids = if is_root() {
            let ids = user_ids(&["postgres", "nobody"])?;
            std::os::unix::fs::chown(&dir, Some(ids.0), Some(ids.1))?;
            Some(ids)
        } else {
            None
        };
        let command = |name: &str| {
            let mut c = Command::new(bin.join(name));
            if let Some((uid, gid)) = ids {
                c.uid(uid).gid(gid);
            }
            c.current_dir(&dir);
            c
        };
        // From here on the guard removes the dir, whatever fails.
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        let init = command("initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(log.try_clone()?)
            .status();
        let init = or_remove_dir(init, &dir, || "running initdb".into())?;
        if !init.success() {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            bail!("initdb failed ({init}): {log}");
        }
        let child = command("postgres")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = or_remove_dir(child, &dir, || "starting postgres".into())?;
        let mut pg = Postgres {
            child,
            bin: bin.to_owned(),
            port,
            dir,
        };
        wait_listening(&format!("127.0.0.1:{port}"), &mut pg.child, "postgres")?;
        // Listening comes before accepting queries (startup recovery); wait for a query.
        let deadline = Instant::now() + Duration::from_secs(30);
        while pg.query("SELECT 1").is_err() {
            if Instant::now() > deadline {
                bail!("postgres on port {port} does not answer queries");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(pg)
    }

    /// The URL for `--postgres-url`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The postmaster's pid (its backends are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs one statement through `psql` and returns its unaligned, tuples-only output.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", "postgres", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown (the postmaster stops its backends); nothing to keep.
        stop(&mut self.child, "QUIT", Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which S3-compatible server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// moto (`moto_server`, Python): objects in memory.
    Moto,
    /// s3s-fs (Rust): objects as files on local disk.
    S3sFs,
}

impl S3Kind {
    /// Name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            S3Kind::Moto => "moto",
            S3Kind::S3sFs => "s3s-fs",
        }
    }
}

/// A private S3-compatible server with [`BUCKET`] created.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    dir: PathBuf,
}

impl S3Server {
    /// Starts `bin` (a `moto_server` or an `s3s-fs`) on a spare loopback port; s3s-fs keeps its
    /// objects in a fresh dir under `parent` (the disk under test), moto in memory.
    pub async fn start(kind: S3Kind, bin: &Path, parent: &Path) -> anyhow::Result<S3Server> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(parent.join(format!("{}.log", kind.name())))?;
        // Absolute: a relative program path would be looked up from `current_dir` below.
        let bin =
            std::fs::canonicalize(bin).with_context(|| format!("{} not found", bin.display()))?;
        let dir = parent.join(format!("s3-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        // Absolute, as the server runs in it.
        let dir = std::fs::canonicalize(&dir)?;
        let mut c = Command::new(&bin);
        match kind {
            S3Kind::Moto => {
                c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            }
            S3Kind::S3sFs => {
                c.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", S3_AKID, "--secret-key", S3_SECRET])
                    .arg(&dir);
            }
        }
        let child = c
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = or_remove_dir(child, &dir, || format!("starting {}", bin.display()))?;
        let mut s3 = S3Server { child, addr, dir };
        wait_listening(&s3.addr, &mut s3.child, kind.name())?;
        let t = Target {
            addr: s3.addr.clone(),
            akid: S3_AKID.into(),
            secret: S3_SECRET.into(),
        };
        http::s3_create_bucket(&t, BUCKET).await?;
        Ok(s3)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `--s3-endpoint-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private redis-server on a spare loopback port, without persistence (`--save ''
/// --appendonly no`), for `hub = "redis"`. Killed when dropped.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// Starts `bin` (e.g. `redis-server` from `PATH`) and waits until it listens.
    pub fn start(bin: &Path) -> anyhow::Result<Redis> {
        let port = free_port()?;
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // Its working dir is where it would write a dump; none is written, but keep it
            // out of the repository.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {} (apt-get install redis-server)", bin.display())
            })?;
        let mut r = Redis { child, port };
        wait_listening(&format!("127.0.0.1:{port}"), &mut r.child, "redis-server")?;
        Ok(r)
    }

    /// The URL for `--redis-url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `r`, or else the error with `what` as its context, after removing `dir` (the server's temp
/// dir, which nothing would clean up once the start failed).
fn or_remove_dir<T>(
    r: std::io::Result<T>,
    dir: &Path,
    what: impl FnOnce() -> String,
) -> anyhow::Result<T> {
    r.or_else(|e| {
        let _ = std::fs::remove_dir_all(dir);
        Err(e).with_context(what)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a private PostgreSQL, queries it, drops it: the process is gone and its temp dir
    /// removed. Skips (with the reason printed) where PostgreSQL is not installed.
    #[test]
    fn postgres_starts_answers_and_cleans_up() {
        let bin = match find_pg_bin(None) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("SKIP: {e:#}");
                return;
            }
        };
        let pg = Postgres::start(&bin).expect("postgres starts");
        assert_eq!(pg.query("SELECT 40 + 2").expect("query"), "42");
        assert!(crate::procstat::tree_cpu_seconds(pg.pid()).is_some());
        let (pid, dir) = (pg.pid(), pg.dir.clone());
        assert!(dir.exists());
        drop(pg);
        assert!(!dir.exists(), "temp dir {} left behind", dir.display());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "postgres {pid} still running"
        );
    }

    /// The same for moto (from the repository's `.venv`), including the bucket.
    #[tokio::test]
    async fn moto_starts_with_bucket_and_cleans_up() {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
        if !bin.exists() {
            eprintln!(
                "SKIP: no {} (python -m venv .venv && .venv/bin/pip install 'moto[server]')",
                bin.display()
            );
            return;
        }
        let parent = tempfile_dir();
        let s3 = S3Server::start(S3Kind::Moto, &bin, &parent)
            .await
            .expect("moto starts");
        let t = Target {
            addr: s3.addr.clone(),
            akid: S3_AKID.into(),
            secret: S3_SECRET.into(),
        };
        // Creating it again is not an error.
        http::s3_create_bucket(&t, BUCKET).await.expect("bucket");
        let (pid, dir) = (s3.pid(), s3.dir.clone());
        drop(s3);
        assert!(!dir.exists());
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        let _ = std::fs::remove_dir_all(&parent);
    }

    /// A private redis-server answers PING and is gone once dropped. Skips where redis-server
    /// is not installed.
    #[test]
    fn redis_starts_answers_and_stops() {
        use std::io::{Read as _, Write as _};
        let bin = Path::new("redis-server");
        if Command::new(bin).arg("--version").output().is_err() {
            eprintln!("SKIP: no redis-server on PATH (apt-get install redis-server)");
            return;
        }
        let r = Redis::start(bin).expect("redis starts");
        let addr = r.url().trim_start_matches("redis://").to_owned();
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.write_all(b"PING\r\n").expect("write");
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"+PONG\r\n");
        let pid = r.pid();
        drop(r);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    fn tempfile_dir() -> PathBuf {
        temp_dir("openkvs-bench-test").expect("temp dir")
    }
}
