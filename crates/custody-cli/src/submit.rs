//! Sending typed governance entries: building the parts every entry shares (actor, subject,
//! links), checking flags that name digests, and turning the server's answer into what the
//! user needs to see, a gate refusal (exit 3) being an outcome rather than an error.

use anyhow::bail;
use custody_api::{AppendResult, Problem};
use custody_client::{Client, ClientError};
use custody_core::envelope::EntryInput;
use serde_json::{Value, json};

/// Exit code of a command the gate refused (promotion, rollback) or a version not admitted.
pub const EXIT_REFUSED: i32 = 3;

/// What became of a submitted entry.
pub enum Outcome {
    /// Appended.
    Appended(AppendResult),
    /// Refused by the gate; the refusal itself was recorded (see `problem.refusal`).
    Refused(Box<Problem>),
}

/// `{"kind": KIND, "id": ID}`, after checking `id` is a principal id custody accepts, so a bad
/// `flag` is named before anything is sent.
pub fn actor(flag: &str, kind: &str, id: &str) -> anyhow::Result<Value> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c));
    if !ok {
        bail!(
            "{flag} {id:?} is not a principal id: use 1-128 of A-Z, a-z, 0-9, '.', '_', ':', '-' (an opaque id, never an e-mail or name)"
        );
    }
    Ok(json!({"kind": kind, "id": id}))
}

/// Whether `v` is a digest as custody writes them: `sha256:` and 64 lowercase hex digits.
pub fn is_digest(v: &str) -> bool {
    custody_core::commitment::parse_sha256(v).is_some()
}

/// Checks a flag that names a version hash.
pub fn version_hash(flag: &str, v: &str) -> anyhow::Result<String> {
    if is_digest(v) {
        Ok(v.to_owned())
    } else {
        bail!(
            "{flag} {v:?} is not a version hash: use sha256: and 64 lowercase hex digits (`custody model hash PATH` prints it)"
        )
    }
}

/// Checks an environment name as the server does.
pub fn environment(flag: &str, v: &str) -> anyhow::Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
    if ok {
        Ok(v.to_owned())
    } else {
        bail!("{flag} {v:?} is not an environment name: use a-z, 0-9, '-' and '_', e.g. production")
    }
}

/// The error to show for a failed write: the problem's title and detail, then each invalid
/// field on a line of its own (a lone field the detail already names is not repeated).
pub fn write_error(e: ClientError) -> anyhow::Error {
    let Some(p) = e.problem() else {
        return e.into();
    };
    let line = |field: &str, message: &str| {
        if field.is_empty() {
            message.to_owned()
        } else {
            format!("{field}: {message}")
        }
    };
    let mut text = format!("{} ({}): {}", p.title, p.status, p.detail);
    if !(p.errors.len() == 1 && p.detail == line(&p.errors[0].field, &p.errors[0].message)) {
        for f in &p.errors {
            text.push_str(&format!("\n  {}", line(&f.field, &f.message)));
        }
    }
    anyhow::anyhow!(text)
}

/// Checks an entry as the server will, before anything is sent. The actor may be left out:
/// the server fills it in from the token, so it is checked with a stand-in.
pub fn check_locally(entry: &Value) -> Result<(), custody_core::envelope::ValidationError> {
    match entry {
        Value::Object(o) if !o.contains_key("actor") => {
            let mut with = o.clone();
            with.insert("actor".into(), json!({"kind": "service", "id": "caller"}));
            EntryInput::from_json(&Value::Object(with)).map(|_| ())
        }
        other => EntryInput::from_json(other).map(|_| ()),
    }
}

/// Validates an entry locally, then appends it to the governance log.
pub async fn submit(client: &Client, tenant: &str, entry: &Value) -> anyhow::Result<Outcome> {
    if let Err(e) = check_locally(entry) {
        bail!("the entry this command built is invalid: {e}");
    }
    match client.append(tenant, "governance", entry).await {
        Ok(r) => Ok(Outcome::Appended(r)),
        Err(ClientError::Problem(p)) if p.refusal.is_some() => Ok(Outcome::Refused(p)),
        Err(e) => Err(write_error(e)),
    }
}

/// The lines that explain a gate refusal: what was refused, each missing item, and where the
/// refusal was recorded.
pub fn refusal_text(what: &str, p: &Problem) -> String {
    let mut s = format!("refused: {what}");
    for m in &p.missing {
        s.push_str(&format!("\n  {}: {}", m.code, m.detail));
    }
    if let Some(r) = &p.refusal {
        s.push_str(&format!(
            "\nthe refusal is recorded at governance index {} (entry {})",
            r.index, r.id
        ));
    }
    s
}
