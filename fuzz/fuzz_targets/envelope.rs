//! Fuzzes the entry model: arbitrary bytes as leaf data (`Envelope::from_canonical`) and, after
//! `jcs::parse_strict`, as a client's entry (`EntryInput::from_json`). Every accepted input is
//! digested, committed and sealed with fixed server fields; a sealed envelope must read back
//! from its own canonical bytes, which must be its leaf data byte for byte.
#![no_main]

use std::sync::LazyLock;

use custody_core::commitment::{self, Salt};
use custody_core::envelope::{self, EntryInput, Envelope, LogName, TenantName, Timestamp};
use custody_core::{jcs, merkle};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// The server's side of sealing, fixed so that only the client's input varies.
struct Server {
    tenant: TenantName,
    id: Uuid,
    time: Timestamp,
    salt: Salt,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| Server {
    tenant: TenantName::parse("acme").expect("tenant"),
    id: Uuid::parse_str("01900000-0000-7000-8000-000000000000").expect("uuid"),
    time: Timestamp::parse("2026-11-23T10:00:00.123456Z").expect("time"),
    salt: Salt([7; 32]),
});

fuzz_target!(|data: &[u8]| {
    // Leaf data read by a verifier: accepted bytes are canonical by definition.
    if let Ok(env) = Envelope::from_canonical(data) {
        let _ = env.validate_commitment();
        let canonical = env
            .canonical_bytes()
            .expect("accepted envelope must re-encode");
        assert_eq!(
            canonical, data,
            "from_canonical accepted non-canonical bytes"
        );
    }

    // The small string parsers the server applies to path and query parameters.
    if data.len() <= 256
        && let Ok(text) = std::str::from_utf8(data)
    {
        let _ = TenantName::parse(text);
        let _ = LogName::parse(text);
        let _ = envelope::validate_server_name(text);
        let _ = envelope::validate_entry_type(text);
        if let Some(t) = Timestamp::parse(text) {
            let _ = (t.unix_micros(), t.to_string());
        }
    }

    let Ok(value) = jcs::parse_strict(data) else {
        return;
    };
    let Ok(input) = EntryInput::from_json(&value) else {
        return;
    };
    let _ = input.content_digest();
    let server = &*SERVER;
    let commitment = input.payload.as_ref().map(|payload| {
        let c = commitment::commit(&server.salt, payload).expect("validated payload must commit");
        commitment::verify(&server.salt, payload, &c).expect("commitment must open");
        c
    });
    let Ok(sealed) = Envelope::seal(
        &input,
        server.tenant.clone(),
        LogName::Governance,
        input.id.unwrap_or(server.id),
        server.time,
        commitment,
    ) else {
        // Too large for a leaf: a clean refusal.
        return;
    };
    assert_eq!(sealed.leaf_hash, merkle::leaf_hash(&sealed.canonical));
    let back = Envelope::from_canonical(&sealed.canonical)
        .unwrap_or_else(|e| panic!("sealed envelope does not read back: {e}"));
    back.validate_commitment()
        .expect("own commitment must be well-formed");
    assert_eq!(back.canonical_bytes().ok(), Some(sealed.canonical));
});
