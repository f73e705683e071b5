//! Log key rotation over HTTP: the new key is announced in the log under the old one, later
//! checkpoints are signed with the new key, old checkpoints keep verifying with the old key,
//! the two are proven consistent, and deep verification and the witness check follow the
//! history.

use crate::common;

use common::{assert_problem, start};
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::merkle::{Hash, verify_consistency, verify_inclusion};
use custody_core::note::NoteVerifier;
use serde_json::json;

const T: &str = "acme";

fn entry(n: u32) -> serde_json::Value {
    json!({"type": "x.test.e", "subject": {"kind": "item", "id": format!("i-{n}")}, "body": {"n": n}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_announced_under_the_old_one_and_signs_from_then_on() {
    let s = start().await;
    s.create_tenant(T).await;
    for n in 0..5 {
        s.client.append(T, "governance", &entry(n)).await.unwrap();
    }
    let old_vkey = s.client.vkey(T, "governance").await.unwrap();
    let old = NoteVerifier::parse(&old_vkey).unwrap();
    let before_note = s.client.checkpoint(T, "governance").await.unwrap();
    let before = SignedCheckpoint::open(&before_note, &old).unwrap();

    let r = s.client.rotate_key(T, "governance").await.unwrap();
    assert_eq!(r.old_verifier_key, old_vkey);
    assert_ne!(r.new_verifier_key, old_vkey);
    assert_eq!(
        s.client.vkey(T, "governance").await.unwrap(),
        r.new_verifier_key
    );
    let new = NoteVerifier::parse(&r.new_verifier_key).unwrap();
    // The announcement is an entry of the log, signed into a checkpoint with the old key.
    let ann = s.client.entry(T, "governance", r.index).await.unwrap();
    assert_eq!(ann.envelope["type"], json!("key.rotated"));
    assert_eq!(
        ann.envelope["body"]["new_verifier_key"],
        json!(r.new_verifier_key)
    );
    assert_eq!(ann.envelope["actor"]["id"], json!(s.principal));

    for n in 5..9 {
        s.client.append(T, "governance", &entry(n)).await.unwrap();
    }
    let after_note = s.client.checkpoint(T, "governance").await.unwrap();
    assert!(
        SignedCheckpoint::open(&after_note, &old).is_err(),
        "the old key signs no more"
    );
    let after = SignedCheckpoint::open(&after_note, &new).unwrap();
    // Old and new checkpoints: consistent, and the announcement is in both trees.
    let c = s
        .client
        .consistency_proof(
            T,
            "governance",
            before.checkpoint.size,
            after.checkpoint.size,
        )
        .await
        .unwrap();
    let hashes: Vec<Hash> = c
        .hashes
        .iter()
        .map(|h| Hash::from_base64(h).unwrap())
        .collect();
    verify_consistency(
        before.checkpoint.size,
        after.checkpoint.size,
        &hashes,
        &before.checkpoint.root,
        &after.checkpoint.root,
    )
    .unwrap();
    let p = s
        .client
        .inclusion_proof(T, "governance", r.index, Some(after.checkpoint.size))
        .await
        .unwrap();
    let path: Vec<Hash> = p
        .hashes
        .iter()
        .map(|h| Hash::from_base64(h).unwrap())
        .collect();
    verify_inclusion(
        r.index,
        after.checkpoint.size,
        &Hash::from_hex(&ann.leaf_hash).unwrap(),
        &path,
        &after.checkpoint.root,
    )
    .unwrap();

    // Deep verification checks each checkpoint with the key in force at its size.
    let audit = s.client.reconcile(T).await.unwrap();
    assert!(audit.ok, "{audit:?}");
    assert!(audit.logs[0].checkpoints >= 10, "{audit:?}");
    // A witness holding the pre-rotation checkpoint is proven consistent.
    let w = s
        .client
        .witness(T, "governance", &before_note)
        .await
        .unwrap();
    assert_eq!(
        (w.old_size, w.new_size),
        (before.checkpoint.size, after.checkpoint.size)
    );
    // The keys on disk: the new one in place, the old one kept, both private.
    let dir = s.db_path.parent().unwrap().join("keys").join(T);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.contains(&"governance.key".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("governance.key.retired-")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with(".next")), "{names:?}");
    use std::os::unix::fs::PermissionsExt;
    for n in &names {
        let mode = std::fs::metadata(dir.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{n}");
    }
    // Other logs keep their keys; only an admin may rotate; nobody writes key.* by hand.
    assert_ne!(
        s.client.vkey(T, "inference").await.unwrap(),
        r.new_verifier_key
    );
    let (_, writer) = s.principal(T, "svc-writer", &["writer"]).await;
    let r2 = s
        .post_as(
            &writer,
            &s.log_url(T, "governance", "/rotate-key"),
            "application/json",
            "",
        )
        .await;
    assert_problem(&r2, 403);
    let forged =
        json!({"type": "key.rotated", "subject": {"kind": "log", "id": "governance"}, "body": {}});
    assert_problem(
        &s.post_json(&s.log_url(T, "governance", "/entries"), &forged)
            .await,
        400,
    );
}
