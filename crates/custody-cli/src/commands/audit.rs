//! `custody trace`, `served`, `history` and `admit`: the audit questions, answered by the
//! server with proofs and checked here before anything is printed. Text output is compact and
//! made for people (the trace as an indented chain, history as a table); `--json` prints the
//! answer exactly as received, once its proofs verified.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use clap::Args;
use custody_api::evidence::{EvidenceLink, Proven, ProvenEntry, TraceAnswer};
use custody_client::TraceQuery;
use custody_verify::proven::{self, Report};
use serde_json::Value;

use crate::commands::model;
use crate::output::print;
use crate::pins;
use crate::settings::Settings;
use crate::shared_flags::{TenantArg, VkeyArgs};
use crate::submit::{self, EXIT_REFUSED};

/// Where a trace starts: exactly one.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct TraceStartArgs {
    /// An inference's request id.
    #[arg(long)]
    request_id: Option<String>,
    /// An entry id (UUID), in either log.
    #[arg(long)]
    entry: Option<String>,
    /// A version hash, dataset digest, training run id or deployment id.
    #[arg(long)]
    subject: Option<String>,
    /// An entry index (with --log).
    #[arg(long)]
    index: Option<u64>,
}

/// `custody trace`.
#[derive(Args)]
pub struct TraceArgs {
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    start: TraceStartArgs,
    /// With --index: the log of the start entry.
    #[arg(long, requires = "index", default_value = "governance")]
    log: String,
    /// Walk forward to what rests on the start (runs, models, deployments, inferences)
    /// instead of back to what it rests on.
    #[arg(long)]
    forward: bool,
    /// Forward: most inferences to include.
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    vkeys: VkeyArgs,
}

/// `custody served`.
#[derive(Args)]
pub struct ServedArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Environment, e.g. production.
    #[arg(long)]
    env: String,
    /// RFC 3339 time to ask about (default: now).
    #[arg(long)]
    at: Option<String>,
    #[command(flatten)]
    vkeys: VkeyArgs,
}

/// `custody history`.
#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Version hash (sha256:<hex>).
    hash: String,
    #[command(flatten)]
    vkeys: VkeyArgs,
}

/// `custody admit`.
#[derive(Args)]
pub struct AdmitArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Environment, e.g. production.
    #[arg(long)]
    env: String,
    /// The weights: a model file or directory (hashed here), or a version hash sha256:<hex>.
    #[arg(value_name = "PATH_OR_DIGEST")]
    weights: String,
    #[command(flatten)]
    vkeys: VkeyArgs,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("?")
}

/// `type what (log#index)` of an entry, `what` being the facts a reader needs for its type.
fn describe(e: &ProvenEntry) -> String {
    let v = &e.envelope;
    let subject = str_at(v, "/subject/id");
    let what = match str_at(v, "/type") {
        "approval.submitted" => format!(
            "{} {}s for {}",
            str_at(v, "/body/approver"),
            str_at(v, "/body/decision"),
            str_at(v, "/body/target")
        ),
        "promotion.recorded" | "rollback.recorded" => format!(
            "to {} by {}",
            str_at(v, "/body/environment"),
            str_at(v, "/body/authoriser")
        ),
        "promotion.refused" | "rollback.refused" | "deployment.refused" => format!(
            "{} in {}",
            short(subject),
            str_at(v, "/body/attempted_body/environment")
        ),
        "deployment.recorded" => format!("{subject} in {}", str_at(v, "/body/environment")),
        "model_version.registered" => format!("{} {subject}", str_at(v, "/body/name")),
        "dataset_version.registered" => format!(
            "{} {} {subject}",
            str_at(v, "/body/name"),
            str_at(v, "/body/version")
        ),
        "training_run.recorded" => format!("{subject} ({})", str_at(v, "/body/status")),
        "approver_key.registered" => format!(
            "{subject} {}",
            short(
                v.pointer("/body/key_fingerprint")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        ),
        "model_card.published" => format!(
            "v{}",
            v.pointer("/body/card_version")
                .map_or("?".into(), Value::to_string)
        ),
        _ => subject.to_owned(),
    };
    format!(
        "{} {} ({}#{})",
        str_at(v, "/type"),
        what.trim(),
        e.log,
        e.index
    )
}

/// A digest shortened for tables: `sha256:` and 12 hex digits.
fn short(h: &str) -> String {
    if submit::is_digest(h) {
        format!("{}…", &h[..19])
    } else {
        h.to_owned()
    }
}

fn rel_rank(rel: &str) -> u8 {
    match rel {
        "served_by" => 0,
        "deploys" => 1,
        "computed_by" => 2,
        "about" => 3,
        "produced_by" => 4,
        "trained_on" => 5,
        _ => 6,
    }
}

/// The trace as an indented chain from its start entry.
fn render_trace(t: &TraceAnswer, report: &Report) -> String {
    let by_id: BTreeMap<&str, &ProvenEntry> = t
        .proven
        .entries
        .iter()
        .map(|e| (str_at(&e.envelope, "/id"), e))
        .collect();
    let forward = t.direction == "forward";
    let children = |id: &str| -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = t
            .links
            .iter()
            .filter_map(|l: &EvidenceLink| {
                if forward {
                    (l.to == id).then_some((l.from.as_str(), l.rel.as_str()))
                } else if l.from == id && l.rel != "about" {
                    Some((l.to.as_str(), l.rel.as_str()))
                } else {
                    (l.to == id && l.rel == "about").then_some((l.from.as_str(), "about"))
                }
            })
            .filter(|(other, _)| by_id.contains_key(other))
            .collect();
        out.sort_by_key(|(other, rel)| {
            let e = by_id[other];
            (rel_rank(rel), e.log.clone(), e.index)
        });
        out.dedup_by_key(|(other, _)| *other);
        out
    };
    let mut lines = Vec::new();
    let mut shown: HashSet<&str> = HashSet::new();
    let mut stack: Vec<(&str, Option<&str>, usize)> = vec![(t.start.as_str(), None, 0)];
    while let Some((id, rel, depth)) = stack.pop() {
        let Some(e) = by_id.get(id) else { continue };
        let indent = "  ".repeat(depth);
        let label = rel.map(|r| format!("{r}: ")).unwrap_or_default();
        if !shown.insert(id) {
            if rel != Some("about") {
                lines.push(format!("{indent}{label}{} (shown above)", describe(e)));
            }
            continue;
        }
        lines.push(format!("{indent}{label}{}", describe(e)));
        let kids = children(id);
        for (child, r) in kids.into_iter().rev() {
            stack.push((child, Some(r), depth + 1));
        }
    }
    let rest: Vec<&ProvenEntry> = t
        .proven
        .entries
        .iter()
        .filter(|e| !shown.contains(str_at(&e.envelope, "/id")))
        .collect();
    if !rest.is_empty() {
        lines.push("also in evidence:".into());
        for e in rest {
            lines.push(format!("  {}", describe(e)));
        }
    }
    if t.truncated {
        lines.push("(truncated: the walk hit its limit; raise --limit)".into());
    }
    lines.push(report.summary());
    lines.join("\n")
}

fn find_entry<'a>(proven: &'a Proven, id: &str) -> Option<&'a ProvenEntry> {
    proven
        .entries
        .iter()
        .find(|e| str_at(&e.envelope, "/id") == id)
}

/// Runs `custody trace`.
pub async fn trace(a: TraceArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let pinned = pins::read_vkeys(&a.vkeys.vkeys)?;
    let q = TraceQuery {
        entry: a.start.entry,
        request_id: a.start.request_id,
        subject: a.start.subject,
        log: a.start.index.map(|_| a.log.clone()),
        index: a.start.index,
        forward: a.forward,
        limit: a.limit,
    };
    let t = settings.client()?.trace(&a.tenant.tenant, &q).await?;
    let report = proven::verify_answer(&t.proven, &pinned, &a.tenant.tenant)?;
    print(json, &t, || render_trace(&t, &report))?;
    Ok(0)
}

/// Runs `custody served`.
pub async fn served(a: ServedArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let pinned = pins::read_vkeys(&a.vkeys.vkeys)?;
    let env = submit::environment("--env", &a.env)?;
    let s = settings
        .client()?
        .served(&a.tenant.tenant, &env, a.at.as_deref())
        .await?;
    let report = proven::verify_answer(&s.proven, &pinned, &a.tenant.tenant)?;
    print(json, &s, || {
        let mut lines = Vec::new();
        match &s.version_hash {
            Some(h) => lines.push(format!(
                "{} at {}: {h}{}",
                s.environment,
                s.at,
                s.model_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            )),
            None => lines.push(format!(
                "{} at {}: nothing admitted to serve",
                s.environment, s.at
            )),
        }
        if let Some(c) = &s.change {
            match find_entry(&s.proven, c) {
                Some(e) => lines.push(format!(
                    "  in force since {}: {} {} ({}#{})",
                    str_at(&e.envelope, "/time"),
                    str_at(&e.envelope, "/type"),
                    c,
                    e.log,
                    e.index
                )),
                None => lines.push(format!("  in force: entry {c}")),
            }
        }
        for e in s
            .proven
            .entries
            .iter()
            .filter(|e| str_at(&e.envelope, "/type") == "deployment.recorded")
        {
            lines.push(format!(
                "  deployment {} at {} ({}#{})",
                str_at(&e.envelope, "/subject/id"),
                str_at(&e.envelope, "/body/endpoint"),
                e.log,
                e.index
            ));
        }
        lines.push(report.summary());
        lines.join("\n")
    })?;
    Ok(0)
}

/// Runs `custody history`.
pub async fn history(a: HistoryArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let pinned = pins::read_vkeys(&a.vkeys.vkeys)?;
    let hash = submit::version_hash("HASH", &a.hash)?;
    let h = settings.client()?.history(&a.tenant.tenant, &hash).await?;
    let report = proven::verify_answer(&h.proven, &pinned, &a.tenant.tenant)?;
    print(json, &h, || {
        let mut lines = vec![format!("{} {}", h.model_name, h.version_hash)];
        lines.push(format!(
            "serving in: {}{}",
            if h.serving_in.is_empty() {
                "nowhere".to_owned()
            } else {
                h.serving_in.join(", ")
            },
            if h.retired { "; retired" } else { "" }
        ));
        if h.changes.is_empty() {
            lines.push("no promotions, rollbacks or retirements".into());
        } else {
            lines.push(format!(
                "{:<28} {:<14} {:<11} {:<21} {:<21} ENTRY",
                "TIME", "ENVIRONMENT", "CHANGE", "FROM", "TO"
            ));
            for c in &h.changes {
                let index = find_entry(&h.proven, &c.entry)
                    .map_or(c.entry.clone(), |e| format!("{}#{}", e.log, e.index));
                lines.push(format!(
                    "{:<28} {:<14} {:<11} {:<21} {:<21} {index}",
                    c.time,
                    c.environment,
                    c.kind,
                    c.from.as_deref().map_or("-".into(), short),
                    c.to.as_deref().map_or("-".into(), short),
                ));
            }
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &h.proven.entries {
            *counts.entry(str_at(&e.envelope, "/type")).or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
        lines.push(format!("evidence: {}", counts.join(", ")));
        lines.push(report.summary());
        lines.join("\n")
    })?;
    Ok(0)
}

/// Runs `custody admit`: exit 0 when admitted, 3 when not.
pub async fn admit(a: AdmitArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let pinned = pins::read_vkeys(&a.vkeys.vkeys)?;
    let env = submit::environment("--env", &a.env)?;
    let digest = if a.weights.starts_with("sha256:") {
        submit::version_hash("PATH_OR_DIGEST", &a.weights)?
    } else {
        model::hash(&PathBuf::from(&a.weights))
            .await?
            .version_hash()
    };
    let r = settings
        .client()?
        .admit(&a.tenant.tenant, &digest, &env)
        .await?;
    let report = proven::verify_answer(&r.proven, &pinned, &a.tenant.tenant)?;
    print(json, &r, || {
        let rule = format!(
            "rule: {} approval{}{}{}",
            r.rule.min_approvals,
            if r.rule.min_approvals == 1 { "" } else { "s" },
            if r.rule.required_criteria.is_empty() {
                String::new()
            } else {
                format!(", criteria {}", r.rule.required_criteria.join(", "))
            },
            if r.rule.separation_of_duties {
                ", separation of duties"
            } else {
                ""
            }
        );
        let approvers = if r.approvers.is_empty() {
            "none".to_owned()
        } else {
            r.approvers.join(", ")
        };
        let mut lines = vec![if r.admitted {
            format!(
                "admitted: {} may serve in {}",
                r.version_hash, r.environment
            )
        } else {
            format!(
                "not admitted: {} may not serve in {}",
                r.version_hash, r.environment
            )
        }];
        for m in &r.missing {
            lines.push(format!("  {}: {}", m.code, m.detail));
        }
        lines.push(format!("  {rule}; approvers counted: {approvers}"));
        lines.push(report.summary());
        lines.join("\n")
    })?;
    Ok(if r.admitted { 0 } else { EXIT_REFUSED })
}
