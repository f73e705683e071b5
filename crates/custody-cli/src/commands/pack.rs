//! Evidence packs exported: `custody export --model|--request-id|--entry|--since` asks the
//! server for the pack, checks every proof in the answer, and writes a directory an auditor
//! can check with standard tools alone (its `README.md` says how) or with `custody verify DIR`
//! (the `custody_verify::pack` checks).
//!
//! The directory holds the server's answer (`pack.json`) and, split out of it, the byte-exact
//! material each standard check needs: signed checkpoints, verifier keys, the RFC 8785
//! envelope bytes that are the Merkle leaves, payloads with their salts, approval DSSE
//! envelopes and approver public keys, all covered by a `SHA256SUMS` file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use custody_api::evidence::{EvidencePack, ProvenEntry};
use custody_client::{Client, PackQuery};
use custody_core::note::NoteVerifier;
use custody_evidence::events::types;
use custody_verify::pack::{SUMS, approval_file, entry_file, key_file, payload_file, sha256_hex};
use custody_verify::proven;
use serde::Serialize;
use serde_json::{Value, json};

use crate::output::print;
use crate::shared_flags::VkeyArgs;
use crate::{pins, submit};

/// What `custody export` packs; any of these selects a pack export (a directory) instead of
/// a raw log export (a file).
#[derive(Args, Clone, Default)]
pub struct PackArgs {
    /// Pack a model version: its registration, training run, datasets, cards, approvals (with
    /// the keys that signed them), policy, serving changes and deployments.
    #[arg(long, conflicts_with_all = ["request_id", "entry", "since", "log"], help_heading = "Evidence pack")]
    pub model: Option<String>,
    /// Pack one inference (by request id) and the chain behind it.
    #[arg(long, conflicts_with_all = ["entry", "since", "log"], help_heading = "Evidence pack")]
    pub request_id: Option<String>,
    /// Pack one inference (by entry id) and the chain behind it.
    #[arg(long, conflicts_with_all = ["since", "log"], help_heading = "Evidence pack")]
    pub entry: Option<String>,
    /// Pack every governance entry and inference recorded from this time (RFC 3339)...
    #[arg(
        long,
        requires = "until",
        conflicts_with = "log",
        help_heading = "Evidence pack"
    )]
    pub since: Option<String>,
    /// ...until this time (exclusive).
    #[arg(long, requires = "since", help_heading = "Evidence pack")]
    pub until: Option<String>,
    /// With --since/--until: most inference records to include (default 1000).
    #[arg(long, requires = "since", help_heading = "Evidence pack")]
    pub inferences: Option<u32>,
    #[command(flatten)]
    pub vkeys: VkeyArgs,
}

impl PackArgs {
    /// Whether a pack was asked for.
    pub fn selected(&self) -> bool {
        self.model.is_some()
            || self.request_id.is_some()
            || self.entry.is_some()
            || self.since.is_some()
    }
}

fn entry_type(e: &ProvenEntry) -> &str {
    e.envelope
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn is_log_name(log: &str) -> bool {
    matches!(log, "governance" | "inference" | "access")
}

fn pretty(v: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v)?;
    out.push(b'\n');
    Ok(out)
}

/// Every file of a pack (but `SHA256SUMS`), by relative path.
fn pack_files(pack: &EvidencePack, server: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert("pack.json".to_owned(), pretty(pack)?);
    for lc in &pack.proven.checkpoints {
        if !is_log_name(&lc.log) {
            bail!("the server named an unknown log {:?}", lc.log);
        }
        files.insert(
            format!("checkpoints/{}.checkpoint", lc.log),
            lc.checkpoint.clone().into_bytes(),
        );
        files.insert(
            format!("keys/{}.vkey", lc.log),
            format!("{}\n", lc.verifier_key.trim()).into_bytes(),
        );
    }
    for e in &pack.proven.entries {
        if !is_log_name(&e.log) {
            bail!("the server named an unknown log {:?}", e.log);
        }
        let data =
            proven::leaf_data(e).map_err(|m| anyhow::anyhow!("{}#{}: {m}", e.log, e.index))?;
        files.insert(entry_file(&e.log, e.index), data);
        if let Some(p) = &e.payload {
            files.insert(
                payload_file(&e.log, e.index),
                pretty(&json!({"payload": p, "salt": e.salt}))?,
            );
            if entry_type(e) == types::APPROVAL && e.log == "governance" {
                files.insert(approval_file(e.index), pretty(p)?);
            }
        }
    }
    for k in &pack.approver_keys {
        if !submit::is_digest(&k.fingerprint) {
            bail!(
                "the server sent an approver key fingerprint {:?}",
                k.fingerprint
            );
        }
        files.insert(key_file(&k.fingerprint), k.public_key.clone().into_bytes());
    }
    let example = pack
        .proven
        .entries
        .first()
        .map(|e| entry_file(&e.log, e.index))
        .unwrap_or_else(|| entry_file("governance", 0));
    let readme = README
        .replace("{scope}", &pack.scope)
        .replace("{tenant}", &pack.tenant)
        .replace("{server}", server)
        .replace("{example}", &example);
    files.insert("README.md".to_owned(), readme.into_bytes());
    Ok(files)
}

fn sums(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(path, bytes)| format!("{}  {path}\n", sha256_hex(bytes)))
        .collect()
}

/// The pins and the query of a pack export, checked before anything is contacted.
pub(crate) fn prepare(args: PackArgs) -> anyhow::Result<(Vec<NoteVerifier>, PackQuery)> {
    let pinned = pins::read_vkeys(&args.vkeys.vkeys)?;
    let q = PackQuery {
        model: match &args.model {
            Some(m) => Some(submit::version_hash("--model", m)?),
            None => None,
        },
        request_id: args.request_id,
        entry: args.entry,
        since: args.since,
        until: args.until,
        inferences: args.inferences,
    };
    Ok((pinned, q))
}

/// A pack as the server answered it, its proofs checked, laid out as files.
pub(crate) struct Fetched {
    pack: EvidencePack,
    summary: String,
    /// Every file but `SHA256SUMS`, by relative path.
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

/// Asks the server for the pack and checks every proof in the answer before anything is
/// written.
pub(crate) async fn fetch(
    client: &Client,
    tenant: &str,
    pinned: &[NoteVerifier],
    q: &PackQuery,
) -> anyhow::Result<Fetched> {
    let pack = client.evidence(tenant, q).await?;
    let report = proven::verify_answer(&pack.proven, pinned, tenant)?;
    let files = pack_files(&pack, client.base_url())?;
    Ok(Fetched {
        pack,
        summary: report.summary(),
        files,
    })
}

/// `custody export ... -o DIR` for a pack.
pub async fn export(
    client: &Client,
    tenant: &str,
    args: PackArgs,
    output: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    let (pinned, q) = prepare(args)?;
    if output.exists()
        && (!output.is_dir()
            || std::fs::read_dir(output)
                .with_context(|| format!("cannot read --output {}", output.display()))?
                .next()
                .is_some())
    {
        bail!(
            "--output {} exists and is not an empty directory; choose a new directory for the pack",
            output.display()
        );
    }
    let fetched = fetch(client, tenant, &pinned, &q).await?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pack".into());
    let tmp = output.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let written = write_dir(&tmp, &fetched.files).and_then(|()| {
        if output.exists() {
            std::fs::remove_dir(output)
                .with_context(|| format!("cannot replace the empty {}", output.display()))?;
        }
        std::fs::rename(&tmp, output)
            .with_context(|| format!("cannot move the pack to {}", output.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    exported(json, &fetched, &output.display().to_string(), false)?;
    Ok(0)
}

/// Reports a written pack; `remote` when `to` is an object storage URL rather than a
/// directory.
pub(crate) fn exported(
    json: bool,
    fetched: &Fetched,
    to: &str,
    remote: bool,
) -> anyhow::Result<()> {
    let pack = &fetched.pack;
    let approvals = pack
        .proven
        .entries
        .iter()
        .filter(|e| entry_type(e) == types::APPROVAL)
        .count();
    let files = fetched.files.len() + 1;
    let mut value = json!({"scope": pack.scope, "entries": pack.proven.entries.len(), "files": files, "truncated": pack.truncated});
    value[if remote { "location" } else { "directory" }] = json!(to);
    print(json, &value, || {
        let mut s = format!(
            "exported {} to {to}: {} entries ({approvals} approvals), {files} files\n{}",
            pack.scope,
            pack.proven.entries.len(),
            fetched.summary
        );
        if pack.truncated {
            s.push_str("\nthe pack is truncated: the server hit its size limit");
        }
        let pins: Vec<String> = pack
            .proven
            .checkpoints
            .iter()
            .map(|c| format!(" --vkey <{} vkey>", c.log))
            .collect();
        s.push_str(&format!(
            "\n{}: custody verify {to}{} (or see its README.md)",
            if remote {
                "check it"
            } else {
                "check it offline"
            },
            pins.concat()
        ));
        s
    })
}

pub(crate) fn write_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (rel, bytes) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(dir.join(SUMS), sums(files))
        .with_context(|| format!("cannot write {}", dir.join(SUMS).display()))
}

/// How to check a pack with standard tools; `{scope}`, `{tenant}`, `{server}` and `{example}`
/// are filled in.
const README: &str = r#"# custody evidence pack: {scope}

Tenant `{tenant}`, exported from {server}. Everything here can be checked offline with standard
tools (`sha256sum`, `python3` with `cryptography`, `openssl`), run from this directory;
`custody verify .` runs every check below. Pin each log's verifier key from a source you trust (not `keys/`, which came with
the pack): `custody verify . --vkey <governance vkey> --vkey <inference vkey>`.

## Layout

| path | content |
|---|---|
| `pack.json` | the server's answer: entries (envelope, leaf hash, inclusion proof, payload, salt), one signed checkpoint per log, links, approver keys |
| `checkpoints/<log>.checkpoint` | the log's signed checkpoint, a C2SP signed note, byte-exact |
| `keys/<log>.vkey` | the log's verifier key as the server announced it; compare it with the one you pinned |
| `entries/<log>/<index>.json` | the entry's envelope in RFC 8785 canonical form: exactly the Merkle leaf data |
| `payloads/<log>/<index>.json` | `{payload, salt}` (salt: standard base64 of 32 bytes) that open the envelope's `payload_commitment` |
| `approvals/<index>.dsse.json` | the DSSE envelope of the approval at that governance index |
| `approver-keys/<hex>.pem` | approver public keys (SPKI PEM); `<hex>` is the SHA-256 of the key's DER, the `key_fingerprint` approvals name |
| `SHA256SUMS` | SHA-256 of every other file |

## 1. Nothing was changed

    sha256sum -c SHA256SUMS

## 2. Each entry file is a leaf (RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || data))

    (printf '\000'; cat {example}) | sha256sum

prints the `leaf_hash` pack.json gives for that entry (`"log"` and `"index"` name the file).

## 3. Each leaf is in its log (RFC 9162 §2.1.3.2 inclusion proofs)

Every proof in pack.json is against the checkpoint of its log (`checkpoints`, the third line of
the checkpoint text is the base64 root hash, the second the tree size):

```python
import base64, hashlib, json
node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
pack = json.load(open("pack.json"))
roots = {}
for c in pack["checkpoints"]:
    origin, size, root = c["checkpoint"].split("\n")[:3]
    roots[c["log"]] = (int(size), base64.b64decode(root))
for e in pack["entries"]:
    size, root = roots[e["log"]]
    data = open(f"entries/{e['log']}/{e['index']}.json", "rb").read()
    r = hashlib.sha256(b"\x00" + data).digest()
    fn, sn = e["index"], size - 1
    for p in map(base64.b64decode, e["proof"]):
        assert sn > 0, "proof too long"
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r == root, f"{e['log']}#{e['index']}: proof does not reach the root"
print("every inclusion proof reaches its checkpoint's root")
```

## 4. Each checkpoint is signed by its log (C2SP signed-note, Ed25519)

A verifier key is `<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`. The signed text
is everything before the blank line (with its final newline); each signature line is
`— <name> <base64(4-byte key id || 64-byte signature)>`.

```python
import base64
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
log = "governance"
name, key_id, key = open(f"keys/{log}.vkey").read().strip().split("+", 2)  # or a pinned key
key = base64.b64decode(key)
text, sigs = open(f"checkpoints/{log}.checkpoint").read().split("\n\n", 1)
for line in sigs.splitlines():
    _, signer, sig = line.split(" ")
    sig = base64.b64decode(sig)
    if signer == name and sig[:4].hex() == key_id:
        Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], (text + "\n").encode())
        print(log, "checkpoint signature OK")
```

The checkpoint's first line (its origin) must be `<server>/{tenant}/<log>` and equal the key
name. Go's `golang.org/x/mod/sumdb/note` and any C2SP tlog client check the same format.

## 5. Payloads open their commitments (`payload_commitment` = sha256(salt || RFC 8785 payload))

```python
import base64, hashlib, json, glob
jcs = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
for path in glob.glob("payloads/*/*.json"):
    p = json.load(open(path))
    env = json.load(open(path.replace("payloads/", "entries/", 1)))
    got = "sha256:" + hashlib.sha256(base64.b64decode(p["salt"]) + jcs(p["payload"])).hexdigest()
    assert got == env["payload_commitment"], path
print("every payload opens its commitment")
```

(`json.dumps` with sorted keys is RFC 8785 for payloads of strings, integers, booleans and
objects; use an RFC 8785 library such as `rfc8785` when a payload holds fractional numbers.)

## 6. Approvals are signed by registered approvers (DSSE v1 + in-toto)

Each `approvals/<index>.dsse.json` is signed over the DSSE pre-authentication encoding
`DSSEv1 <len(payloadType)> <payloadType> <len(payload)> <payload>` (lengths in bytes). The
approval's envelope (`entries/governance/<index>.json`) names the key in
`body.key_fingerprint`; its PEM is `approver-keys/<hex>.pem`, and
`openssl pkey -pubin -in approver-keys/<hex>.pem -outform DER | sha256sum` prints `<hex>`.
`body.statement_digest` is the SHA-256 of the signed statement.

```python
import base64, glob, hashlib, json
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
for path in glob.glob("approvals/*.dsse.json"):
    index = path.split("/")[-1].split(".")[0]
    body = json.load(open(f"entries/governance/{index}.json"))["body"]
    key = serialization.load_pem_public_key(
        open(f"approver-keys/{body['key_fingerprint'][7:]}.pem", "rb").read())
    d = json.load(open(path))
    payload, t = base64.b64decode(d["payload"]), d["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    sig = base64.b64decode(d["signatures"][0]["sig"])
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(sig, pae)
    else:
        key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == body["statement_digest"]
    print(path, "signed by", body["approver"], body["decision"], body["target"])
```

With openssl instead: write `pae` and the raw signature to files, then
`openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in pae.bin -sigfile sig.bin` (Ed25519)
or `openssl dgst -sha256 -verify KEY.pem -signature sig.bin pae.bin` (ECDSA P-256).

The decoded payload is an in-toto Statement (`https://in-toto.io/Statement/v1`) whose subject
digest is the model's version hash and whose predicate
(`https://custody.dev/attestation/approval/v1`) states the decision, target and criteria.
"#;
