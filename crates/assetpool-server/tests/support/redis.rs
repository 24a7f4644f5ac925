//! Redis for the limits store tests: the shared one at 127.0.0.1:6379 (tests
//! never collide there: its entries are named by key ids, fresh in every
//! test), or a `redis-server` of a test's own on a free port, which the test
//! stops and starts again.
//!
//! Skipped (said on stderr) when Redis is unreachable or `redis-server` is not
//! installed, unless ASSETPOOL_REQUIRE_REDIS=1 makes that a failure.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis of the machine.
pub const SHARED_URL: &str = "redis://127.0.0.1:6379";

fn required() -> bool {
    std::env::var("ASSETPOOL_REQUIRE_REDIS").as_deref() == Ok("1")
}

fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test}: {why} (ASSETPOOL_REQUIRE_REDIS=1 makes this a failure)"
    );
    eprintln!("skipping {test}: {why}");
}

/// Whether a Redis answers PING on 127.0.0.1:`port`.
pub fn answers(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

/// The shared Redis's URL, or `None` (after a skip line) when it does not answer.
pub fn shared(test: &str) -> Option<&'static str> {
    if answers(6379) {
        Some(SHARED_URL)
    } else {
        skip(test, "no Redis answers at 127.0.0.1:6379");
        None
    }
}

/// A `redis-server` of the test's own (no persistence), killed when dropped.
pub struct OwnRedis {
    child: Option<Child>,
    port: u16,
    directory: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts one on a free port, or `None` (after a skip line) without `redis-server`.
    pub fn start(test: &str) -> Option<OwnRedis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            skip(test, "redis-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = OwnRedis {
            child: None,
            port,
            directory: tempfile::tempdir().expect("temporary directory"),
        };
        redis.resume();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): everything it held is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty; waits (at most 10 s) for PING.
    pub fn resume(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.directory.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
