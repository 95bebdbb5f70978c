//! A real `openkvs serve` child process for a benchmark: loopback port, its own data dir,
//! fixed bench credentials; killed (and its data dir removed) when dropped, also when the
//! benchmark fails half-way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::Target;

/// Access key id the bench servers accept.
pub const AKID: &str = "AKIDBENCH";
/// Its secret.
pub const SECRET: &str = "bench-secret";

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: std::process::Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    dir: PathBuf,
}

impl Server {
    /// Starts `bin serve --no-turn` on a free loopback port with a fresh data dir under
    /// `parent` (its log goes to `parent/server.log`; `OPENKVS_BENCH_LOG` sets `RUST_LOG`),
    /// and waits until it accepts connections.
    pub fn start(bin: &Path, parent: &Path) -> anyhow::Result<Server> {
        Server::start_with(bin, parent, &[], &[])
    }

    /// [`Server::start`] with extra `serve` arguments and environment variables (the
    /// scale-out backends' settings).
    pub fn start_with(
        bin: &Path,
        parent: &Path,
        extra_args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = parent.join(format!("run-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = std::process::Command::new(bin)
            .args(["serve", "--no-turn", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&dir)
            .args(extra_args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("OPENKVS_ACCESS_KEY_ID", AKID)
            .env("OPENKVS_SECRET_ACCESS_KEY", SECRET)
            .env(
                "RUST_LOG",
                std::env::var("OPENKVS_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(parent.join("server.log"))?)
            .spawn()?;
        let mut server = Server {
            child,
            addr: format!("127.0.0.1:{port}"),
            dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&server.addr).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                anyhow::bail!(
                    "{} exited with {status} before listening (see {})",
                    bin.display(),
                    parent.join("server.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("{} did not start listening", bin.display())
    }

    /// The server's process id (for RSS sampling).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client target with the bench credentials.
    pub fn target(&self) -> Target {
        Target {
            addr: self.addr.clone(),
            akid: AKID.into(),
            secret: SECRET.into(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
