//! The tlog-tiles read API under `/tlog/{tenant}/{log}/`, checked by a client written here from
//! c2sp.org/tlog-tiles alone (`testdata/vectors/c2sp-specs/tlog-tiles.md`): its own path
//! encoding, its own roots and proofs rebuilt from tiles with `sha2` (through
//! `common::rfc9162`, never custody's Merkle code). At every tree size up to 600 and through
//! every tile boundary up to 2,100 entries, the root it rebuilds must match the signed
//! checkpoints, and its inclusion and consistency proofs must match the `/v1` proofs hash for
//! hash.

use crate::common;

use std::collections::{BTreeSet, HashMap};

use common::rfc9162::{self, H};
use common::{Reply, TestServer, assert_field, assert_problem, hash_b64, send, start};
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::note::NoteVerifier;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const T: &str = "acme";
const LOG: &str = "governance";

/// `<N>` as the spec spells it: "zero-padded 3-digit path elements. All but the last path
/// element MUST begin with an `x`."
fn index_path(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// `tile/<L>/<N>[.p/<W>]`, or `tile/entries/<N>[.p/<W>]` when `level` is `"entries"`.
fn tile_path(level: &str, n: u64, width: u64) -> String {
    let mut p = format!("tile/{level}/{}", index_path(n));
    if width < 256 {
        p.push_str(&format!(".p/{width}"));
    }
    p
}

/// The largest power of two strictly below `n` (`n > 1`), RFC 6962's split point.
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// A tlog-tiles client for one log: fetches tiles (caching them, as they never change) and
/// computes tree hashes from them.
struct Tiles<'a> {
    s: &'a TestServer,
    prefix: String,
    cache: HashMap<String, Vec<u8>>,
}

impl<'a> Tiles<'a> {
    fn new(s: &'a TestServer, tenant: &str, log: &str) -> Self {
        Self {
            s,
            prefix: s.url(&format!("/tlog/{tenant}/{log}/")),
            cache: HashMap::new(),
        }
    }

    async fn get(&mut self, path: &str) -> Vec<u8> {
        if let Some(b) = self.cache.get(path) {
            return b.clone();
        }
        let r = self.s.get(&format!("{}{path}", self.prefix)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.content_type, "application/octet-stream", "{path}");
        self.cache.insert(path.to_owned(), r.body.clone());
        r.body
    }

    /// The hashes of tile `n` at level `l` as a client of a tree of `size` asks for it: full
    /// if the tree has all of it, otherwise the partial tile of the tree's width.
    async fn tile(&mut self, size: u64, l: u32, n: u64) -> Vec<H> {
        let at_level = size >> (8 * l);
        let width = if (n + 1) * 256 <= at_level {
            256
        } else {
            at_level % 256
        };
        assert!(
            width > 0 && n * 256 < at_level,
            "tile {l}/{n} is not in {size}"
        );
        let body = self.get(&tile_path(&l.to_string(), n, width)).await;
        assert_eq!(body.len() as u64, width * 32, "tile {l}/{n} width {width}");
        body.chunks(32).map(|c| c.try_into().unwrap()).collect()
    }

    /// `MTH` of the complete subtree of `2^e` leaves starting at leaf `start`, from the highest
    /// tile level that holds it: `2^(e mod 8)` consecutive hashes of tile level `e / 8`.
    async fn subtree(&mut self, size: u64, start: u64, e: u32) -> H {
        let (l, j) = (e / 8, e % 8);
        let first = start >> (8 * l);
        let hashes = self.tile(size, l, first / 256).await;
        let offset = (first % 256) as usize;
        rfc9162::mth(&hashes[offset..offset + (1 << j)])
    }

    /// `MTH(D[lo:hi])` in a tree of `size`, by RFC 6962's split: the complete subtrees of the
    /// range, largest first, folded from the right.
    async fn range(&mut self, size: u64, lo: u64, hi: u64) -> H {
        let mut parts = Vec::new();
        let mut pos = lo;
        while pos < hi {
            let e = 63 - (hi - pos).leading_zeros();
            assert_eq!(pos % (1 << e), 0, "unaligned range {lo}..{hi}");
            parts.push(self.subtree(size, pos, e).await);
            pos += 1 << e;
        }
        let mut acc = parts.pop().expect("a non-empty range");
        while let Some(left) = parts.pop() {
            acc = rfc9162::node(&left, &acc);
        }
        acc
    }

    /// The root of the tree of `size`, from its partial tiles only, as the spec intends: at
    /// each level, the partial tile's width in binary names the right-edge subtrees it holds.
    async fn root(&mut self, size: u64) -> H {
        if size == 0 {
            return Sha256::digest(b"").into();
        }
        let mut parts = Vec::new();
        let levels = (64 - size.leading_zeros()).div_ceil(8);
        for l in (0..levels).rev() {
            let width = (size >> (8 * l)) % 256;
            if width == 0 {
                continue;
            }
            let hashes = self.tile(size, l, size >> (8 * (l + 1))).await;
            let mut start = 0usize;
            for bit in (0..8).rev() {
                if width & (1 << bit) != 0 {
                    parts.push(rfc9162::mth(&hashes[start..start + (1 << bit)]));
                    start += 1 << bit;
                }
            }
        }
        let mut acc = parts.pop().expect("size > 0");
        while let Some(left) = parts.pop() {
            acc = rfc9162::node(&left, &acc);
        }
        acc
    }

    /// `PATH(m, D[size])` (RFC 6962 §2.1.1), leaf sibling first.
    async fn inclusion(&mut self, m: u64, size: u64) -> Vec<H> {
        let (mut lo, mut hi) = (0, size);
        let mut out = Vec::new();
        while hi - lo > 1 {
            let k = split(hi - lo);
            if m < lo + k {
                out.push(self.range(size, lo + k, hi).await);
                hi = lo + k;
            } else {
                out.push(self.range(size, lo, lo + k).await);
                lo += k;
            }
        }
        out.reverse();
        out
    }

    /// `PROOF(m, D[size])` (RFC 6962 §2.1.2), for `0 < m < size`.
    async fn consistency(&mut self, m: u64, size: u64) -> Vec<H> {
        let (mut lo, mut hi) = (0, size);
        let mut known = true;
        let mut out = Vec::new();
        while m < hi {
            let k = split(hi - lo);
            if m <= lo + k {
                out.push(self.range(size, lo + k, hi).await);
                hi = lo + k;
            } else {
                out.push(self.range(size, lo, lo + k).await);
                lo += k;
                known = false;
            }
        }
        if !known {
            out.push(self.range(size, lo, hi).await);
        }
        out.reverse();
        out
    }
}

fn hashes_b64(v: &Value) -> Vec<H> {
    v.as_array()
        .expect("hashes")
        .iter()
        .map(|h| hash_b64(h.as_str().expect("base64")))
        .collect()
}

/// Appends `n` entries in one NDJSON request (one batch, one checkpoint).
async fn append(s: &TestServer, from: u64, n: u64) -> u64 {
    let lines: Vec<Value> = (from..from + n)
        .map(|i| common::entry("x.test.tiled", &format!("m-{i}")))
        .collect();
    let r = s.post_ndjson(&s.log_url(T, LOG, "/entries"), &lines).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["checkpoint_size"]
        .as_u64()
        .expect("checkpoint_size")
}

/// The signed checkpoint at `/tlog/.../checkpoint`, opened with the log's verifier key, after
/// checking it is byte for byte the `/v1` one.
async fn checkpoint(s: &TestServer, verifier: &NoteVerifier) -> (u64, H, Reply) {
    let r = s.get(&s.url(&format!("/tlog/{T}/{LOG}/checkpoint"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v1 = s.get(&s.log_url(T, LOG, "/checkpoint")).await;
    assert_eq!(r.body, v1.body, "the tiled and /v1 checkpoints differ");
    let cp = SignedCheckpoint::open(&r.text(), verifier).expect("signed by the log");
    (cp.checkpoint.size, cp.checkpoint.root.0, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_written_from_the_spec_rebuilds_every_tree_size_from_tiles() {
    let s = start().await;
    s.create_tenant(T).await;
    let vkey = s.get(&s.log_url(T, LOG, "/vkey")).await.text();
    let verifier = NoteVerifier::parse(vkey.trim()).unwrap();

    // Batches ending on and around every tile boundary: one checkpoint per batch.
    let targets: [u64; 35] = [
        1, 2, 4, 7, 12, 20, 33, 54, 88, 143, 232, 255, 256, 257, 300, 511, 512, 513, 600, 767, 768,
        769, 1000, 1023, 1024, 1025, 1279, 1280, 1281, 1536, 1792, 2047, 2048, 2049, 2100,
    ];
    let mut signed: HashMap<u64, H> = HashMap::new();
    let (size, root, r) = checkpoint(&s, &verifier).await;
    assert_eq!((size, root), (0, Sha256::digest(b"").into()));
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    assert_eq!(r.headers["cache-control"], "no-cache");
    signed.insert(0, root);
    let mut size = 0;
    for target in targets {
        assert_eq!(append(&s, size, target - size).await, target);
        size = target;
        let (at, root, _) = checkpoint(&s, &verifier).await;
        assert_eq!(at, size);
        signed.insert(at, root);
    }
    let last = size;
    let last_root = signed[&last];

    let mut sizes: BTreeSet<u64> = (0..=600).collect();
    sizes.extend(targets);
    for k in 1..=8 {
        sizes.extend([k * 256 - 1, k * 256, k * 256 + 1]);
    }
    sizes.insert(last);
    let mut client = Tiles::new(&s, T, LOG);
    let mut proofs = 0;
    for &n in &sizes {
        let root = client.root(n).await;
        if let Some(want) = signed.get(&n) {
            assert_eq!(
                common::hex(&root),
                common::hex(want),
                "root at the checkpoint of size {n}"
            );
        }
        if n == 0 {
            continue;
        }
        // Every size: the root from tiles is the one /v1 proves the latest checkpoint extends.
        if n < last {
            let v1 = s
                .get(&s.log_url(T, LOG, &format!("/proof/consistency?from={n}&to={last}")))
                .await
                .json();
            let served = hashes_b64(&v1["hashes"]);
            assert_eq!(
                served,
                client.consistency(n, last).await,
                "PROOF({n}, {last})"
            );
            assert!(
                rfc9162::verify_consistency(n, last, &root, &last_root, &served),
                "consistency {n} -> {last}"
            );
            proofs += 1;
        }
        // Sampled leaves: inclusion in the tree of this size, computed from its tiles.
        let leaves = client.tile(n, 0, 0).await;
        let mut indexes: BTreeSet<u64> = [0, n - 1, n / 2, n * 7 / 11].into();
        indexes.retain(|i| *i < n);
        for i in indexes {
            let v1 = s
                .get(&s.log_url(T, LOG, &format!("/proof/inclusion?index={i}&size={n}")))
                .await
                .json();
            let served = hashes_b64(&v1["hashes"]);
            let path = client.inclusion(i, n).await;
            assert_eq!(served, path, "PATH({i}, {n})");
            let leaf = if i < 256 {
                leaves[i as usize]
            } else {
                client.tile(n, 0, i / 256).await[(i % 256) as usize]
            };
            assert_eq!(common::hash_hex(v1["leaf_hash"].as_str().unwrap()), leaf);
            assert!(
                rfc9162::verify_inclusion(i, n, &leaf, &path, &root),
                "inclusion of {i} in {n}"
            );
            proofs += 1;
        }
    }
    assert!(proofs > 2_000, "{proofs} proofs compared");

    // The whole tree at the last size: every entry hashes to its level-0 hash, every level-1
    // hash is the root of its full level-0 tile.
    let mut leaf_hashes: Vec<H> = Vec::new();
    let bundles = last.div_ceil(256);
    for n in 0..bundles {
        let hashes = client.tile(last, 0, n).await;
        let width = hashes.len() as u64;
        let body = client.get(&tile_path("entries", n, width)).await;
        let mut rest = body.as_slice();
        let mut entries = 0;
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let entry = &rest[2..2 + len];
            assert_eq!(
                rfc9162::leaf(entry),
                hashes[entries],
                "entry {}",
                n * 256 + entries as u64
            );
            let envelope: Value = serde_json::from_slice(entry).unwrap();
            assert_eq!(envelope["type"], "x.test.tiled");
            assert_eq!(
                envelope["subject"]["id"],
                json!(format!("m-{}", n * 256 + entries as u64))
            );
            entries += 1;
            rest = &rest[2 + len..];
        }
        assert_eq!(entries as u64, width);
        leaf_hashes.extend(hashes);
    }
    assert_eq!(rfc9162::mth(&leaf_hashes), last_root);
    let level1 = client.tile(last, 1, 0).await;
    assert_eq!(level1.len(), 8);
    for (i, h) in level1.iter().enumerate() {
        assert_eq!(
            *h,
            rfc9162::mth(&leaf_hashes[i * 256..(i + 1) * 256]),
            "1/{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_are_cacheable_exactly_as_long_as_they_are_immutable() {
    let s = start().await;
    s.create_tenant(T).await;
    assert_eq!(append(&s, 0, 300).await, 300);
    let base = s.url(&format!("/tlog/{T}/{LOG}/"));
    for (path, cache) in [
        ("tile/0/000", "private, max-age=31536000, immutable"),
        ("tile/entries/000", "private, max-age=31536000, immutable"),
        ("tile/0/001.p/44", "private, max-age=60"),
        ("tile/0/001.p/3", "private, max-age=60"),
        ("tile/entries/001.p/44", "private, max-age=60"),
        ("tile/1/000.p/1", "private, max-age=60"),
    ] {
        let r = s.get(&format!("{base}{path}")).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.content_type, "application/octet-stream", "{path}");
        assert_eq!(r.headers["cache-control"], cache, "{path}");
    }
    // The partial tile of an older size is a prefix of today's tile.
    let now = s.get(&format!("{base}tile/0/001.p/44")).await.body;
    let then = s.get(&format!("{base}tile/0/001.p/3")).await.body;
    assert_eq!(&now[..96], then.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tile_paths_are_spelled_as_the_spec_says_and_bounded_by_the_tree() {
    let s = start().await;
    s.create_tenant(T).await;
    assert_eq!(append(&s, 0, 300).await, 300);
    let base = s.url(&format!("/tlog/{T}/{LOG}/"));
    for bad in [
        "tile/0/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/x000/001",
        "tile/0/001/001",
        "tile/0/x001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/5/6",
        "tile/0/001.p",
        "tile/0/%30%30%30",
        "tile/entries/0",
        "tile/entries/001.p/044",
        "tile/entries/x000/001",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
    ] {
        let r = s.get(&format!("{base}{bad}")).await;
        let p = assert_problem(&r, 400);
        assert_field(&p, "path");
    }
    for absent in [
        "tile/0/001",
        "tile/0/001.p/45",
        "tile/0/002.p/1",
        "tile/1/000",
        "tile/1/000.p/2",
        "tile/2/000.p/1",
        "tile/8/000.p/1",
        "tile/63/000",
        "tile/entries/001",
        "tile/entries/001.p/45",
        "tile/0/x018/x446/x744/x073/x709/x551/615",
        "tile/entries/x072/x057/x594/x037/x927/935",
    ] {
        let r = s.get(&format!("{base}{absent}")).await;
        assert_problem(&r, 404);
    }
    // A query string, an unknown log, an empty tile path.
    let p = assert_problem(&s.get(&format!("{base}tile/0/000.p/1?x=1")).await, 400);
    assert_field(&p, "x");
    assert_problem(
        &s.get(&s.url(&format!("/tlog/{T}/ledger/checkpoint"))).await,
        404,
    );
    assert_problem(&s.get(&format!("{base}tile/0/")).await, 404);
    assert_problem(
        &s.get(&s.url("/tlog/no-such-tenant/governance/checkpoint"))
            .await,
        404,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_follow_the_access_rules_and_bundles_are_access_logged() {
    let s = start().await;
    s.create_tenant(T).await;
    s.create_tenant("globex").await;
    assert_eq!(append(&s, 0, 300).await, 300);
    let base = s.url(&format!("/tlog/{T}/{LOG}/"));
    let (_, writer) = s.principal(T, "svc-writer", &["writer"]).await;
    let (auditor_id, auditor) = s.principal(T, "usr-auditor", &["auditor"]).await;
    let as_token = |token: &str, path: &str| {
        let req = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{base}{path}"))
            .bearer_auth(token);
        send(req)
    };
    // Reading a bundle is recorded before it is answered: the subject is the log, the range
    // and a digest of every leaf hash returned.
    let before = s.size(T, "access").await;
    let hashes = as_token(&auditor, "tile/0/000").await.body;
    assert_eq!(
        s.size(T, "access").await,
        before,
        "hash tiles are not access-logged"
    );
    let bundle = as_token(&auditor, "tile/entries/001.p/44").await;
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    assert_eq!(s.size(T, "access").await, before + 1);
    let leaves = as_token(&auditor, "tile/0/001.p/44").await.body;
    let mut digest = Sha256::new();
    for leaf in leaves.chunks(32) {
        digest.update(format!("{}\n", common::hex(leaf)));
    }
    let page = s
        .client
        .list(
            T,
            "access",
            &custody_client::ListQuery {
                entry_type: Some("access.read".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let read = page
        .entries
        .iter()
        .find(|e| e.envelope["actor"]["id"] == json!(auditor_id))
        .expect("the bundle read is in the access log");
    let env = &read.envelope;
    assert_eq!(env["subject"], json!({"kind": "log", "id": LOG}));
    assert_eq!(
        env["body"]["route"],
        json!("GET /tlog/{tenant}/{log}/tile/entries/{*index}")
    );
    assert_eq!(env["body"]["action"], json!("read_evidence"));
    assert_eq!(env["body"]["query"], json!({"from": "256", "to": "300"}));
    assert_eq!(env["body"]["returned"], json!(44));
    assert_eq!(
        env["body"]["returned_leaf_hashes_digest"],
        json!(format!("sha256:{}", common::hex(&digest.finalize())))
    );
    assert_eq!(env["related"].as_array().unwrap().len(), 44);
    assert_eq!(hashes.len(), 8192);
    // Refusals (recorded in the background, so only after the counts above).
    let (_, foreign) = s
        .principal(
            "globex",
            "usr-all",
            &["admin", "writer", "approver", "auditor"],
        )
        .await;
    for path in ["checkpoint", "tile/0/000", "tile/entries/000"] {
        assert_problem(&as_token(&foreign, path).await, 403);
        let anon = send(
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(format!("{base}{path}")),
        )
        .await;
        assert_problem(&anon, 401);
    }
    // A writer may read the tree (hashes) but not the entries.
    assert_eq!(as_token(&writer, "checkpoint").await.status, 200);
    assert_eq!(as_token(&writer, "tile/0/000").await.status, 200);
    let p = assert_problem(&as_token(&writer, "tile/entries/000").await, 403);
    assert!(p.detail.contains("needs the role"), "{}", p.detail);

    // The access log's own bundles need the access log's roles.
    let access = s.url(&format!("/tlog/{T}/access/tile/entries/000.p/1"));
    let r = send(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(&access)
            .bearer_auth(&writer),
    )
    .await;
    assert_problem(&r, 403);
}
