//! `custody monitor` through the binary: a custody log audited over HTTP as it grows, the same
//! log mirrored into a directory (and then tampered with, tile by tile), logs written here as
//! any other tlog-tiles implementation would write them (and then forked or rolled back under
//! the same key), and bad input answered with one line.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{Out, Server, cli, cli_as, cli_stdin, custody, entry, runtime, s, token_for};
use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::merkle::{Frontier, Hash, Subtree, leaf_hash};
use custody_core::note::NoteSigner;
use custody_core::tiles::{self, TileKind, TilePath};
use serde_json::Value;

const TENANT: &str = "mon";

fn append(url: &str, range: std::ops::Range<u64>) {
    let lines: String = range
        .map(|n| serde_json::to_string(&entry("mon", n)).unwrap() + "\n")
        .collect();
    cli_stdin(
        url,
        &["append", "-t", TENANT, "--ndjson", "--batch", "70", "-"],
        lines.as_bytes(),
    )
    .ok();
}

fn vkey(url: &str, log: &str) -> String {
    cli(url, &["vkey", "-t", TENANT, "-l", log])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The tlog-tiles prefix of the tenant's governance log.
fn prefix(url: &str) -> String {
    format!("{url}/tlog/{TENANT}/governance/")
}

fn monitor(server: &str, log: &str, vkey: &str, state: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["monitor", log, "--vkey", vkey, "--state", s(state)];
    args.extend_from_slice(extra);
    cli(server, &args)
}

fn state_size(state: &Path) -> u64 {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    v["size"].as_u64().unwrap()
}

#[test]
fn a_custody_log_is_audited_over_http_as_it_grows() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    cli(url, &["tenant", "create", TENANT]).ok();
    append(url, 0..300);
    let vkey = vkey(url, "governance");
    let state = work.path().join("gov.state");

    let out = monitor(url, &prefix(url), &vkey, &state, &[]).ok();
    assert!(
        out.stdout
            .starts_with("OK: test.local/mon/governance size 300 root "),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .contains("300 entries and 5 tiles checked; first run"),
        "{out:#?}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out:#?}");
    assert_eq!(state_size(&state), 300);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The log grows past a level-1 tile; the next run proves the new tree starts with the old.
    append(url, 300..600);
    let out = monitor(url, &prefix(url), &vkey, &state, &["--json"])
        .ok()
        .json();
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["size"], 600);
    assert_eq!(out["previous_size"], 300);
    assert_eq!(out["entries_checked"], 600);
    // Two full and one partial level-0 tile with their bundles, and the level-1 tile.
    assert_eq!(out["tiles_checked"], 7);
    let cp = cli(url, &["--json", "checkpoint", "-t", TENANT])
        .ok()
        .json();
    assert_eq!(out["root_base64"], cp["root"]);
    assert_eq!(state_size(&state), 600);

    // Hashes only: no bundles fetched, nothing read from the access log's point of view.
    let out = monitor(url, &prefix(url), &vkey, &state, &["--hashes-only"]).ok();
    assert!(
        out.stdout
            .contains("0 entries and 4 tiles checked; extends the size 600"),
        "{out:#?}"
    );

    // Entry bundles are access-logged like any read of entries.
    let reads = cli(
        url,
        &[
            "--json",
            "list",
            "-t",
            TENANT,
            "-l",
            "access",
            "--type",
            "access.read",
            "--all",
        ],
    )
    .ok();
    assert!(
        reads
            .stdout
            .contains("GET /tlog/{tenant}/{log}/tile/entries/{*index}"),
        "{reads:#?}"
    );
}

/// Copies the log at `prefix` into `dir` as the spec lays out its URLs: the checkpoint, every
/// hash tile and entry bundle of its tree.
fn mirror(prefix: &str, token: &str, dir: &Path) -> u64 {
    runtime().block_on(async {
        custody_client::install_crypto_provider();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let get = |path: String| {
            let req = http.get(format!("{prefix}{path}")).bearer_auth(token);
            async move {
                let r = req.send().await.unwrap();
                assert!(r.status().is_success(), "{path}: {}", r.status());
                r.bytes().await.unwrap().to_vec()
            }
        };
        let note = get("checkpoint".into()).await;
        let size: u64 = String::from_utf8(note.clone())
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        std::fs::write(dir.join("checkpoint"), note).unwrap();
        let kinds = (0..8).map(TileKind::Hashes).chain([TileKind::Entries]);
        for kind in kinds {
            for tile in tiles::tiles(kind, size) {
                let path = dir.join(tile.to_string());
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, get(tile.to_string()).await).unwrap();
            }
        }
        size
    })
}

fn flip(file: &Path, at: usize) -> Vec<u8> {
    let original = std::fs::read(file).unwrap();
    let mut changed = original.clone();
    changed[at] ^= 1;
    std::fs::write(file, changed).unwrap();
    original
}

#[test]
fn a_directory_copy_verifies_and_each_tampered_tile_is_named() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    cli(url, &["tenant", "create", TENANT]).ok();
    append(url, 0..300);
    let vkey = vkey(url, "governance");
    let copy = work.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let token = token_for(url).unwrap();
    assert_eq!(mirror(&prefix(url), &token, &copy), 300);
    let dir = s(&copy).to_string();
    let state = work.path().join("dir.state");

    let out = monitor(url, &dir, &vkey, &state, &[]).ok();
    assert!(out.stdout.contains("size 300"), "{out:#?}");
    // The same tree as over HTTP.
    let http = monitor(
        url,
        &prefix(url),
        &vkey,
        &work.path().join("http.state"),
        &[],
    )
    .ok();
    assert_eq!(
        out.stdout.split(':').nth(1),
        http.stdout.split(':').nth(1),
        "{out:#?} {http:#?}"
    );

    // One flipped bit in a hash tile, an entry bundle or an upper tile: exit 2, naming it.
    for (path, at, named) in [
        ("tile/0/000", 40, "tile/0/000"),
        ("tile/entries/000", 30, "tile/entries/000"),
        ("tile/0/001.p/44", 5, "tile/0/001.p/44"),
        ("tile/1/000.p/1", 0, "tile/1/000.p/1"),
    ] {
        let file = copy.join(path);
        let original = flip(&file, at);
        let out = monitor(url, &dir, &vkey, &state, &[]);
        assert_eq!(out.code, 2, "{path}: {out:#?}");
        assert!(out.stdout.starts_with("MISMATCH: "), "{out:#?}");
        assert!(out.stdout.contains(named), "{path}: {out:#?}");
        std::fs::write(&file, original).unwrap();
    }
    // A changed checkpoint no longer carries a valid signature: exit 3.
    let cp = copy.join("checkpoint");
    let original = std::fs::read_to_string(&cp).unwrap();
    std::fs::write(&cp, original.replacen("\n300\n", "\n299\n", 1)).unwrap();
    let out = monitor(url, &dir, &vkey, &state, &[]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.starts_with("BAD SIGNATURE: "), "{out:#?}");
    std::fs::write(&cp, &original).unwrap();
    // Another log's key: exit 3.
    let other = vkey_of_inference(url);
    let out = monitor(url, &dir, &other, &work.path().join("other.state"), &[]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("no signature by"), "{out:#?}");
    // The right key, but another origin asked for: exit 3.
    let out = monitor(
        url,
        &dir,
        &vkey,
        &work.path().join("origin.state"),
        &["--origin", "test.local/mon/inference"],
    );
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("names origin"), "{out:#?}");
    // --vkey-file works the same; a partial tile the log dropped is read from the full one.
    let key_file = work.path().join("gov.vkey");
    std::fs::write(&key_file, format!("{vkey}\n")).unwrap();
    let full = copy.join("tile/0/001");
    let partial = copy.join("tile/0/001.p/44");
    let mut hashes = std::fs::read(&partial).unwrap();
    hashes.resize(tiles::FULL_TILE_BYTES, 0);
    std::fs::write(&full, hashes).unwrap();
    std::fs::remove_file(&partial).unwrap();
    cli(
        url,
        &[
            "monitor",
            &dir,
            "--vkey-file",
            s(&key_file),
            "--state",
            s(&state),
        ],
    )
    .ok();
    assert_eq!(state_size(&state), 300);
}

fn vkey_of_inference(url: &str) -> String {
    vkey(url, "inference")
}

/// A tlog-tiles log written the way any implementation would: entries `data`, a checkpoint
/// signed by `signer`, every tile and bundle of the tree.
fn write_log(dir: &Path, signer: &NoteSigner, data: &[Vec<u8>]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut frontier = Frontier::new();
    let mut nodes: HashMap<Subtree, Hash> = HashMap::new();
    for d in data {
        nodes.extend(frontier.push(leaf_hash(d)));
    }
    let size = data.len() as u64;
    let write = |tile: TilePath, body: Vec<u8>| {
        let path = dir.join(tile.to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    for level in 0..8 {
        for tile in tiles::tiles(TileKind::Hashes(level), size) {
            let body = tile
                .subtrees()
                .unwrap()
                .iter()
                .flat_map(|st| nodes[st].0)
                .collect();
            write(tile, body);
        }
    }
    for tile in tiles::tiles(TileKind::Entries, size) {
        let (from, to) = tile.leaves().unwrap();
        let bundle =
            tiles::encode_bundle(data[from as usize..to as usize].iter().map(Vec::as_slice))
                .unwrap();
        write(tile, bundle);
    }
    let signed = SignedCheckpoint::sign(
        Checkpoint {
            origin: signer.name().to_owned(),
            size,
            root: frontier.root(),
            extensions: Vec::new(),
        },
        signer,
    )
    .unwrap();
    std::fs::write(dir.join("checkpoint"), signed.note).unwrap();
    dir.to_path_buf()
}

fn entries(tag: &str, range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("{tag} entry {i}").into_bytes())
        .collect()
}

#[test]
fn a_fork_or_a_rollback_under_the_same_key_is_caught() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let signer = NoteSigner::generate("example.com/elsewhere").unwrap();
    let vkey = signer.verifier().to_string();
    let mut a = entries("a", 0..300);
    let logs: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("a", a.clone()),
        // The same first 100 entries, then another history, longer.
        ("b", [&a[..100], &entries("b", 100..400)[..]].concat()),
        // The same size, one entry changed.
        ("c", {
            let mut c = a.clone();
            c[257] = b"rewritten".to_vec();
            c
        }),
        // A rollback to an earlier size.
        ("d", a[..260].to_vec()),
        // An honest extension.
        ("e", {
            a.extend(entries("a", 300..700));
            a.clone()
        }),
    ];
    let dirs: HashMap<&str, String> = logs
        .iter()
        .map(|(name, data)| {
            (
                *name,
                s(&write_log(&w.join(name), &signer, data)).to_owned(),
            )
        })
        .collect();
    let state = w.join("elsewhere.state");
    let run = |name: &str| {
        custody(&[
            "monitor",
            &dirs[name],
            "--vkey",
            &vkey,
            "--state",
            s(&state),
        ])
    };

    let out = run("a").ok();
    assert!(
        out.stdout.starts_with("OK: example.com/elsewhere size 300"),
        "{out:#?}"
    );
    for (name, says) in [
        ("b", "does not extend the one verified before"),
        ("c", "two different roots for the same size"),
        ("d", "shrank below the size verified before"),
    ] {
        let out = run(name);
        assert_eq!(out.code, 2, "{name}: {out:#?}");
        assert!(out.stdout.starts_with("FORK: "), "{name}: {out:#?}");
        assert!(out.stdout.contains(says), "{name}: {out:#?}");
        assert_eq!(state_size(&state), 300, "a fork leaves the state as it was");
    }
    let out = run("e").ok();
    assert!(
        out.stdout.contains("size 700 root") && out.stdout.contains("extends the size 300"),
        "{out:#?}"
    );
    // Once the state is at 700, the first log is a rollback.
    assert_eq!(run("a").code, 2);
}

#[test]
fn bad_input_gets_one_line() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let signer = NoteSigner::generate("example.com/small").unwrap();
    let dir = write_log(&w.join("log"), &signer, &entries("x", 0..3));
    let vkey = signer.verifier().to_string();
    let state = w.join("small.state");
    let d = s(&dir);
    // No key at all: a usage error.
    custody(&["monitor", d]).one_line_error();
    // A key that does not parse.
    let out = custody(&["monitor", d, "--vkey", "not-a-key"]);
    assert_eq!(out.code, 1);
    assert!(out.one_line_error().contains("--vkey"), "{out:#?}");
    // Both forms at once.
    custody(&["monitor", d, "--vkey", &vkey, "--vkey-file", d]).one_line_error();
    // A log that is neither a URL nor a directory.
    let missing = s(&w.join("nowhere")).to_owned();
    let out = custody(&["monitor", &missing, "--vkey", &vkey, "--state", s(&state)]);
    assert_eq!(out.code, 1);
    assert!(out.one_line_error().contains("nowhere"), "{out:#?}");
    // A URL nothing listens on.
    let out = custody(&[
        "monitor",
        "http://127.0.0.1:9/tlog/x/governance/",
        "--vkey",
        &vkey,
        "--state",
        s(&state),
    ]);
    assert_eq!(out.code, 1);
    assert!(out.one_line_error().contains("checkpoint"), "{out:#?}");
    // A state file that is not one, or is another log's.
    std::fs::write(&state, "{}").unwrap();
    let out = custody(&["monitor", d, "--vkey", &vkey, "--state", s(&state)]);
    assert_eq!(out.code, 1);
    assert!(out.one_line_error().contains("--state"), "{out:#?}");
    std::fs::remove_file(&state).unwrap();
    custody(&["monitor", d, "--vkey", &vkey, "--state", s(&state)]).ok();
    let other = NoteSigner::generate("example.com/other").unwrap();
    let other_dir = write_log(&w.join("other"), &other, &entries("y", 0..3));
    let out = custody(&[
        "monitor",
        s(&other_dir),
        "--vkey",
        &other.verifier().to_string(),
        "--state",
        s(&state),
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.one_line_error().contains("example.com/small"),
        "{out:#?}"
    );
    // A missing tile the checkpoint needs.
    std::fs::remove_file(dir.join("tile/0/000.p/3")).unwrap();
    let out = custody(&["monitor", d, "--vkey", &vkey, "--state", s(&state)]);
    assert_eq!(out.code, 1);
    assert!(out.one_line_error().contains("tile/0/000.p/3"), "{out:#?}");
}

#[test]
fn the_token_goes_only_to_the_server_it_is_for() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    cli(url, &["tenant", "create", TENANT]).ok();
    let vkey = vkey(url, "governance");
    let token = token_for(url).unwrap();
    let state = work.path().join("t.state");
    // CUSTODY_TOKEN is set, but --server names another origin: the log is asked without it.
    let out = cli_as(
        "http://127.0.0.1:9",
        &token,
        &[
            "monitor",
            &prefix(url),
            "--vkey",
            &vkey,
            "--state",
            s(&state),
        ],
        b"",
    );
    let line = out.one_line_error();
    assert!(line.contains("401"), "{out:#?}");
    assert!(
        line.contains("only to the scheme, host and port of --server"),
        "{out:#?}"
    );
    // Pointed at the right server, the same token works.
    let out = cli_as(
        url,
        &token,
        &[
            "monitor",
            &prefix(url),
            "--vkey",
            &vkey,
            "--state",
            s(&state),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.contains("size 1 root") || out.stdout.contains("size 0 root"),
        "{out:#?}"
    );
}
