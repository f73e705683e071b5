//! `custody approve`, `promote` and `rollback`: the decisions that move a model version toward
//! serving. Approvals are signed on this machine (an in-toto statement in a DSSE envelope) so
//! the ledger holds the approver's own signature; promotions and rollbacks pass custody's gate,
//! and a refusal is reported item by item with exit code 3.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use custody_client::Client;
use custody_core::dsse;
use custody_core::intoto::{self, ApprovalPredicate, Criterion, Decision};
use serde_json::{Value, json};

use crate::commands::keys;
use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::TenantArg;
use crate::submit::{self, Outcome};

/// Approve or reject.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecisionArg {
    /// The version may go to the target.
    Approve,
    /// The version must not go to the target.
    Reject,
}

/// `custody approve`.
#[derive(Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// The approver's private key, PEM (its public key must be registered with `custody key
    /// register`).
    #[arg(long)]
    key: PathBuf,
    /// Version hash of the model version (sha256:<hex>).
    #[arg(long)]
    model: String,
    /// The model's name, as registered.
    #[arg(long)]
    name: String,
    /// Stage or environment the decision is for, e.g. production.
    #[arg(long)]
    target: String,
    /// approve or reject.
    #[arg(long, value_enum)]
    decision: DecisionArg,
    /// A criterion checked: NAME=pass or NAME=fail, optionally @sha256:<hex> of its evidence
    /// (e.g. an evaluation report). Repeatable.
    #[arg(long = "criterion", value_name = "NAME=pass|fail[@sha256:EVIDENCE]")]
    criteria: Vec<String>,
    /// The policy the decision was made under.
    #[arg(long)]
    policy: Option<String>,
    /// Justification. Signed and public to every proof holder: no personal data.
    #[arg(long)]
    comment: Option<String>,
    /// Also write the signed DSSE envelope to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// `custody promote`.
#[derive(Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Version hash to promote.
    #[arg(long)]
    model: String,
    /// Environment, e.g. production.
    #[arg(long)]
    env: String,
    /// The version it replaces (default: what the ledger says serves in ENV now).
    #[arg(long)]
    from: Option<String>,
    /// Principal id who authorised it.
    #[arg(long)]
    authoriser: String,
    /// Why (kept in the salted payload, erasable).
    #[arg(long)]
    reason: Option<String>,
}

/// `custody rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Version hash to return to (it must have served in ENV before).
    #[arg(long)]
    to: String,
    /// Version hash serving now.
    #[arg(long)]
    from: String,
    /// Environment.
    #[arg(long)]
    env: String,
    /// Principal id who authorised it.
    #[arg(long)]
    authoriser: String,
    /// Why (kept in the salted payload, erasable).
    #[arg(long)]
    reason: Option<String>,
}

/// Parses `NAME=pass|fail[@sha256:HEX]`.
fn criterion(arg: &str) -> anyhow::Result<Criterion> {
    let usage =
        "use NAME=pass or NAME=fail, optionally followed by @sha256:<64 hex> of the evidence";
    let (rest, evidence) = match arg.rsplit_once('@') {
        Some((rest, ev)) if ev.starts_with("sha256:") => {
            if !submit::is_digest(ev) {
                bail!(
                    "--criterion {arg:?}: the evidence digest must be sha256: and 64 lowercase hex digits"
                );
            }
            (rest, Some(ev["sha256:".len()..].to_owned()))
        }
        _ => (arg, None),
    };
    let Some((name, outcome)) = rest.rsplit_once('=') else {
        bail!("--criterion {arg:?}: {usage}");
    };
    let passed = match outcome {
        "pass" => true,
        "fail" => false,
        other => bail!("--criterion {arg:?}: outcome {other:?} is not pass or fail; {usage}"),
    };
    if name.is_empty() {
        bail!("--criterion {arg:?}: the name is empty; {usage}");
    }
    Ok(Criterion {
        name: name.to_owned(),
        passed,
        evidence_sha256: evidence,
    })
}

/// Signs and submits an approval.
pub async fn approve(a: ApproveArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let hash = submit::version_hash("--model", &a.model)?;
    let criteria = a
        .criteria
        .iter()
        .map(|c| criterion(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = keys::read_signing_key("--key", &a.key)?;
    let fingerprint = key.public_key().fingerprint();
    let decision = match a.decision {
        DecisionArg::Approve => Decision::Approve,
        DecisionArg::Reject => Decision::Reject,
    };
    let predicate = ApprovalPredicate {
        decision,
        target: a.target.clone(),
        criteria,
        policy: a.policy.clone(),
        comment: a.comment.clone(),
    };
    let statement = intoto::approval_statement(&a.name, &hash["sha256:".len()..], &predicate)
        .map_err(|e| anyhow::anyhow!("cannot build the approval statement: {e}"))?;
    let envelope = dsse::sign(&key, intoto::INTOTO_PAYLOAD_TYPE, &statement, &fingerprint);
    let envelope_json = envelope.to_json();
    if let Some(path) = &a.output {
        let text = serde_json::to_string_pretty(&envelope_json)? + "\n";
        std::fs::write(path, text)
            .with_context(|| format!("cannot write --output {}", path.display()))?;
    }
    let entry = json!({
        "type": "approval.submitted",
        "subject": {"kind": "model_version", "id": hash},
        "body": {},
        "payload": envelope_json,
    });
    let client = settings.client()?;
    let r = match submit::submit(&client, &a.tenant.tenant, &entry).await? {
        Outcome::Appended(r) => r,
        Outcome::Refused(p) => {
            print(json, &*p, || submit::refusal_text("the approval", &p))?;
            return Ok(submit::EXIT_REFUSED);
        }
    };
    let verb = match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    print(
        json,
        &json!({"index": r.index, "id": r.id, "version_hash": hash, "decision": decision.as_str(), "target": a.target, "key_fingerprint": fingerprint, "leaf_hash": r.leaf_hash, "checkpoint_size": r.checkpoint_size, "existing": r.existing}),
        || {
            format!(
                "{verb} {} {hash} for {} (signed by {fingerprint}): governance index {}, entry {}",
                a.name, a.target, r.index, r.id
            )
        },
    )?;
    Ok(0)
}

/// The entry of a promotion or rollback.
fn transition(
    entry_type: &str,
    to: &str,
    from: Option<&str>,
    env: &str,
    authoriser: &str,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    let mut body = serde_json::Map::new();
    if let Some(f) = from {
        body.insert("from".into(), json!(f));
    }
    body.insert("to".into(), json!(to));
    body.insert("environment".into(), json!(env));
    body.insert("authoriser".into(), json!(authoriser));
    let mut entry = json!({
        "type": entry_type,
        "subject": {"kind": "model_version", "id": to},
        "body": body,
    });
    if let Some(r) = reason {
        entry["payload"] = json!({"reason": r});
    }
    Ok(entry)
}

async fn send_transition(
    client: &Client,
    tenant: &str,
    entry: &Value,
    what: String,
    done: String,
    json: bool,
) -> anyhow::Result<i32> {
    match submit::submit(client, tenant, entry).await? {
        Outcome::Appended(r) => {
            print(json, &r, || {
                format!(
                    "{done}: governance index {}, entry {} (covered by checkpoint size {})",
                    r.index, r.id, r.checkpoint_size
                )
            })?;
            Ok(0)
        }
        Outcome::Refused(p) => {
            print(json, &*p, || submit::refusal_text(&what, &p))?;
            Ok(submit::EXIT_REFUSED)
        }
    }
}

/// Records a promotion through the gate.
pub async fn promote(a: PromoteArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let to = submit::version_hash("--model", &a.model)?;
    let env = submit::environment("--env", &a.env)?;
    let client = settings.client()?;
    let from = match &a.from {
        Some(f) => Some(submit::version_hash("--from", f)?),
        None => {
            client
                .served(&a.tenant.tenant, &env, None)
                .await?
                .version_hash
        }
    };
    let entry = transition(
        "promotion.recorded",
        &to,
        from.as_deref(),
        &env,
        &a.authoriser,
        a.reason.as_deref(),
    )?;
    let what = format!("promotion of {to} to {env}");
    let done = match &from {
        Some(f) => format!("promoted {to} to {env}, replacing {f}"),
        None => format!("promoted {to} to {env}"),
    };
    send_transition(&client, &a.tenant.tenant, &entry, what, done, json).await
}

/// Records a rollback to a version that served before.
pub async fn rollback(a: RollbackArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let to = submit::version_hash("--to", &a.to)?;
    let from = submit::version_hash("--from", &a.from)?;
    let env = submit::environment("--env", &a.env)?;
    let entry = transition(
        "rollback.recorded",
        &to,
        Some(&from),
        &env,
        &a.authoriser,
        a.reason.as_deref(),
    )?;
    let client = settings.client()?;
    let what = format!("rollback of {env} from {from} to {to}");
    let done = format!("rolled {env} back from {from} to {to}");
    send_transition(&client, &a.tenant.tenant, &entry, what, done, json).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_parse() {
        let c = criterion("auc>=0.9=pass").unwrap();
        assert_eq!((c.name.as_str(), c.passed), ("auc>=0.9", true));
        assert!(c.evidence_sha256.is_none());
        let hex = "ab".repeat(32);
        let c = criterion(&format!("bias=fail@sha256:{hex}")).unwrap();
        assert_eq!((c.name.as_str(), c.passed), ("bias", false));
        assert_eq!(c.evidence_sha256.as_deref(), Some(hex.as_str()));
        for bad in ["bias", "bias=maybe", "=pass", "bias=pass@sha256:xyz"] {
            assert!(criterion(bad).is_err(), "{bad}");
        }
    }
}
