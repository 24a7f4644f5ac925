//! nginx started by a test from one of the documented configurations, in a
//! temporary prefix (pid file, logs and temp folders rewritten into it).
//!
//! Skipped (said on stderr) when nginx is not installed, unless
//! ASSETPOOL_REQUIRE_NGINX=1 makes that a failure.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    child: Child,
    pub url: String,
    _directory: tempfile::TempDir,
}

impl Drop for Nginx {
    /// Stops nginx with SIGTERM, which makes the master stop its workers too
    /// (SIGKILL would leave the workers running); SIGKILL only as a last resort.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether nginx is installed; `what` names the skipped test on stderr.
pub fn nginx_available(what: &str) -> bool {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("ASSETPOOL_REQUIRE_NGINX").as_deref() != Ok("1"),
            "nginx is required (ASSETPOOL_REQUIRE_NGINX=1) but not installed"
        );
        // Not captured by the test harness: a plain `cargo test` shows the skip.
        let _ = writeln!(std::io::stderr(), "skipped {what}: nginx is not installed");
    }
    found
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts nginx with `config`, whose `listen_directive` (e.g. `listen 8080;`)
/// becomes a free port on 127.0.0.1 and whose `/run/` and `/var/log/nginx/`
/// paths move into a temporary folder.
pub async fn start_nginx(config: &str, listen_directive: &str) -> Nginx {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = directory.path().display().to_string();
    assert!(
        config.contains(listen_directive),
        "{listen_directive} not in the config"
    );
    let config = config
        .replace(listen_directive, &format!("listen 127.0.0.1:{port};"))
        .replace("/run/", &format!("{path}/"))
        .replace("/var/log/nginx/", &format!("{path}/"))
        .replacen(
            "http {",
            &format!(
                "http {{\n    client_body_temp_path {path}/body;\n    proxy_temp_path {path}/proxy;\n    \
                 fastcgi_temp_path {path}/fastcgi;\n    uwsgi_temp_path {path}/uwsgi;\n    scgi_temp_path {path}/scgi;"
            ),
            1,
        );
    let config_path = directory.path().join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(directory.path())
        .arg("-c")
        .arg(&config_path)
        .arg("-g")
        .arg("daemon off;")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Nginx {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _directory: directory,
    }
}
