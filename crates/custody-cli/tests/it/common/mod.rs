//! Shared helpers for the process-level tests: run the real `custody` binary as a server or a
//! client, and build entries.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod durability;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_custody");

/// The marker the server logs once it is bound.
const LISTENING: &str = "custody listening on http://";

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Tokens of the servers these tests started, by URL: `cli` sends the right one.
static TOKENS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// The id of the principal the process tests act as.
pub const HARNESS: &str = "p_harness";

/// Puts the harness's principal (server scope, every role) into the data directory's database
/// before the server first starts, so tests that are not about access control can do
/// anything; returns its token. Idempotent across restarts on the same directory.
fn harness_principal(data_dir: &Path) -> String {
    let db = data_dir.join("custody.db");
    let token_file = data_dir.join("harness.token");
    if let Ok(t) = std::fs::read_to_string(&token_file) {
        return t.trim().to_string();
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .expect("data dir");
    }
    let token = std::thread::spawn(move || {
        runtime().block_on(async move {
            let store = custody_store_sqlite::SqliteStore::open(&db)
                .await
                .expect("open store");
            let (id, token) = custody_testkit::server::superuser(&store).await;
            assert_eq!(id, HARNESS);
            token
        })
    })
    .join()
    .expect("harness principal thread");
    std::fs::write(&token_file, &token).expect("token file");
    token
}

/// Makes `cli` send `token` to the server at `url`.
pub fn register_token(url: &str, token: &str) {
    TOKENS
        .lock()
        .unwrap()
        .push((url.to_string(), token.to_string()));
}

/// The harness token of the server at `url`, if a test started it.
pub fn token_for(url: &str) -> Option<String> {
    TOKENS
        .lock()
        .unwrap()
        .iter()
        .find(|(u, _)| u == url)
        .map(|(_, t)| t.clone())
}

/// A `custody serve` child process. Killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory it serves.
    pub data_dir: PathBuf,
    log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts `custody serve` on `data_dir` and a free port, and waits (without sleeping) for
    /// the line that names the bound address.
    pub fn start(data_dir: &Path) -> Server {
        let token = harness_principal(data_dir);
        Self::spawn(data_dir, Some(token), &[], &[])
    }

    /// Starts `custody serve` on a data directory without the harness principal, as a user
    /// would on a new machine: the server bootstraps its own administrator.
    pub fn start_fresh(data_dir: &Path) -> Server {
        Self::spawn(data_dir, None, &[], &[])
    }

    /// [`Server::start`] with more `serve` arguments and environment variables.
    pub fn start_with(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let token = harness_principal(data_dir);
        Self::spawn(data_dir, Some(token), args, envs)
    }

    /// Starts `custody serve` on a PostgreSQL database, keeping its signing keys in
    /// `data_dir` (servers sharing a database share it). The first server to start bootstraps
    /// the administrator into `token_file`; the token is registered for `cli`.
    pub fn start_postgres(data_dir: &Path, database_url: &str, token_file: &Path) -> Server {
        let server = Self::spawn(
            data_dir,
            None,
            &[
                "--database-url",
                database_url,
                "--bootstrap-token-file",
                token_file.to_str().expect("UTF-8 path"),
            ],
            &[],
        );
        let token = std::fs::read_to_string(token_file).expect("bootstrap token file");
        register_token(&server.url, token.trim());
        server
    }

    fn spawn(
        data_dir: &Path,
        token: Option<String>,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--server-name", "test.local"])
            .args(extra)
            .env("CUSTODY_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("CUSTODY_DATABASE_URL")
            .env_remove("CUSTODY_DATA_DIR")
            .env_remove("CUSTODY_LISTEN")
            .env_remove("CUSTODY_SERVER_NAME")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn custody serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let err_log = log.clone();
        let err_reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            let mut tx = Some(tx);
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = strip_ansi(&String::from_utf8_lossy(&buf));
                if let Some(pos) = line.find(LISTENING) {
                    let rest = &line[pos + LISTENING.len()..];
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                err_log.lock().unwrap().push_str(&line);
            }
        });
        let out_log = log.clone();
        let out_reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            if !buf.is_empty() {
                out_log
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf));
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = err_reader.join();
                panic!(
                    "custody serve did not report its address ({e}); exit {status:?}; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        if let Some(token) = token {
            register_token(&format!("http://{addr}"), &token);
        }
        Server {
            child: Some(child),
            url: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            log,
            readers: vec![err_reader, out_reader],
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the server wrote so far (stderr and stdout), colours stripped.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.join_readers();
        }
    }

    /// SIGTERM via `kill -TERM`, then waits (at most 10 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                self.join_readers();
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "custody serve did not exit within 10 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a CLI run produced.
#[derive(Debug)]
pub struct Out {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Panics with the whole output unless the exit code is 0.
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// Panics unless the command failed with exactly one stderr line starting with
    /// `error:`; returns that line.
    pub fn one_line_error(&self) -> String {
        assert_ne!(self.code, 0, "command should have failed: {self:#?}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:#?}");
        assert!(
            lines[0].starts_with("error:"),
            "stderr must start with error: {self:#?}"
        );
        lines[0].to_string()
    }

    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `custody ARGS` with `stdin` as its input.
pub fn custody_with_stdin(args: &[&str], stdin: &[u8]) -> Out {
    let mut cmd = Command::new(BIN);
    let server = args
        .iter()
        .position(|a| *a == "--server")
        .and_then(|i| args.get(i + 1));
    match server.and_then(|s| token_for(s)) {
        Some(t) => cmd
            .env("CUSTODY_TOKEN", t)
            .env("CUSTODY_PURPOSE", "process-level-test"),
        None => cmd
            .env_remove("CUSTODY_TOKEN")
            .env_remove("CUSTODY_PURPOSE"),
    };
    let mut child = cmd
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CUSTODY_LOG")
        .env_remove("CUSTODY_SERVER")
        .env_remove("CUSTODY_TENANT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn custody");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait custody");
    let _ = writer.join();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `custody ARGS` with empty stdin.
pub fn custody(args: &[&str]) -> Out {
    custody_with_stdin(args, b"")
}

/// Runs `custody --server URL ARGS`.
pub fn cli(server: &str, args: &[&str]) -> Out {
    let mut all = vec!["--server", server];
    all.extend_from_slice(args);
    custody(&all)
}

/// Runs `custody --server URL ARGS` as the holder of `token`.
pub fn cli_as(server: &str, token: &str, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(BIN)
        .args(["--server", server])
        .args(args)
        .env("NO_COLOR", "1")
        .env("CUSTODY_TOKEN", token)
        .env_remove("CUSTODY_PURPOSE")
        .env_remove("CUSTODY_LOG")
        .env_remove("CUSTODY_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn custody");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait custody");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `custody --server URL ARGS` with `stdin`.
pub fn cli_stdin(server: &str, args: &[&str], stdin: &[u8]) -> Out {
    let mut all = vec!["--server", server];
    all.extend_from_slice(args);
    custody_with_stdin(&all, stdin)
}

/// A valid entry of type `x.test.<kind>` whose body carries `n`.
pub fn entry(kind: &str, n: u64) -> Value {
    json!({
        "type": format!("x.test.{kind}"),
        "subject": {"kind": "item", "id": format!("item-{n}")},
        "context": {"purpose": "process-level test"},
        "body": {"n": n, "note": format!("hello world {n}")},
    })
}

/// A multi-threaded runtime on two workers (the machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Path as &str (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
