//! A real S3-compatible server for tests: moto's `moto_server`, from the Python environment
//! `scripts/py-venv.sh` makes (required, so a machine without it fails rather than skips).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket [`start_moto`] creates.
pub const BUCKET: &str = "evidence";

/// Kills (SIGKILL) and reaps the child when dropped, so a failing test leaves no server.
pub struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `bin` directory of the Python environment, made by `scripts/py-venv.sh`.
fn venv_bin() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/py-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run py-venv.sh");
    assert!(
        out.status.success(),
        "py-venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    python.parent().expect("venv bin").to_path_buf()
}

/// One plain HTTP/1.1 request; returns the status code.
pub fn http(base: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head}")))
}

/// `moto_server` on 127.0.0.1 and a free port, with the test bucket created.
pub fn start_moto(work: &Path) -> (KillOnDrop, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = work.join("moto.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(venv_bin().join("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn moto_server");
    let mut moto = KillOnDrop(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(&url, "GET", "/", b"").is_err() {
        if let Some(status) = moto.0.try_wait().unwrap() {
            panic!(
                "moto_server exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http(&url, "PUT", &format!("/{BUCKET}"), b"").unwrap(), 200);
    (moto, url)
}
