//! A real S3-compatible server for tests: moto's `moto_server` from the Python environment,
//! on 127.0.0.1 and a free port, with one bucket created.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket [`Moto::start`] creates.
pub const BUCKET: &str = "evidence";

/// A running `moto_server`, killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves no server behind.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts the server (its log in `work/moto.log`) and creates [`BUCKET`].
    pub fn start(work: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("port")
            .port();
        let log_path = work.join("moto.log");
        let log = std::fs::File::create(&log_path).expect("moto log");
        let child = Command::new(crate::python::bin_dir().join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn moto_server");
        let mut moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(&moto.url, "GET", "/", b"").is_err() {
            if let Some(status) = moto.child.try_wait().expect("moto status") {
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
        assert_eq!(
            http(&moto.url, "PUT", &format!("/{BUCKET}"), b"").expect("create bucket"),
            200
        );
        moto
    }

    /// The `AWS_*` variables that point an S3 client at this server (see [`aws_env`]).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        aws_env(&self.url)
    }
}

/// The `AWS_*` variables that point an S3 client (custody's `object_store`) at `endpoint`:
/// the endpoint, plain HTTP allowed, test credentials, a region.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// Gives a command the test credentials and nothing else of AWS: every `AWS_*` variable
/// inherited from the machine is removed (for commands that name the endpoint themselves,
/// e.g. with `--s3-endpoint`).
pub fn use_test_credentials(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(
        aws_env("")
            .into_iter()
            .filter(|(k, _)| !matches!(*k, "AWS_ENDPOINT" | "AWS_ALLOW_HTTP")),
    );
}

/// Points a command at the S3 server `endpoint` and at nothing else: the test credentials of
/// [`use_test_credentials`], and the endpoint with plain HTTP allowed.
pub fn use_endpoint(cmd: &mut Command, endpoint: &str) {
    use_test_credentials(cmd);
    cmd.envs(aws_env(endpoint));
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

/// A signed S3 client for [`BUCKET`] at `endpoint`, with the test credentials: what a pipeline
/// (or an attacker with write access) would use to put objects beside custody's.
#[cfg(feature = "s3")]
pub fn bucket(endpoint: &str) -> object_store::aws::AmazonS3 {
    custody_client::install_crypto_provider();
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_region("us-east-1")
        .build()
        .expect("S3 client")
}
