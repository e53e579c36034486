//! A private broker for tests that stop and restart it (outages), so they
//! never disturb the shared stack. Uses the tansu binary the stack scripts
//! installed (`INTOPS_TANSU_BIN`, exported by deploy/local/test.sh).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll_until;

/// A tansu broker on its own port and data file.
#[derive(Debug)]
pub struct PrivateBroker {
    port: u16,
    db: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PrivateBroker {
    /// Starts a broker on a free loopback port with fresh data.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut broker = Self {
            port,
            db: dir.path().join("tansu.db"),
            child: None,
            _dir: dir,
        };
        broker.restart().await?;
        Ok(broker)
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL) and waits until its port is closed.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = self.bootstrap();
        poll_until(
            "the private broker to stop",
            Duration::from_secs(30),
            || async { std::net::TcpStream::connect(&addr).is_err().then_some(()) },
        )
        .await;
    }

    /// (Re)starts the broker on the same port and data file and waits until
    /// it accepts connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let bin = std::env::var("INTOPS_TANSU_BIN").map_err(|_| {
            anyhow::anyhow!(
                "INTOPS_TANSU_BIN is not set: run the suite through deploy/local/test.sh"
            )
        })?;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
            ])
            .arg(format!("sqlite:///{}", self.db.display()))
            .env_remove("CLUSTER_ID")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let addr = self.bootstrap();
        poll_until(
            "the private broker to listen",
            Duration::from_secs(30),
            || async { std::net::TcpStream::connect(&addr).ok().map(|_| ()) },
        )
        .await;
        Ok(())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
