//! Erasure of payloads: by retention policy, or for a data-subject request. The tree never
//! changes: an erased entry keeps its envelope, leaf hash and commitment, so every checkpoint
//! and proof stays valid; its payload and salt are deleted from the store, the store is
//! compacted so the bytes are gone from disk, and an `entry.payload_erased` entry naming the
//! erased entry, the reason and the legal basis is appended to the same log.
//!
//! Each record is appended before its payload is deleted, and an entry that already has a
//! record is not recorded twice, so an erasure interrupted at any point completes when run
//! again and never leaves a deletion without its record.

use custody_core::envelope::{
    Actor, Context, EntryInput, LogName, Related, SubjectRef, TenantName, ValidationError,
};
use custody_evidence::events::types;
use custody_store::{EntryFilter, LogKey, PayloadHolder};
use serde_json::{Map, Value, json};

use crate::{Backend, Governance, GovernanceError};

const MICROS_PER_DAY: i64 = 86_400_000_000;
const PAGE: u32 = 500;

/// What to erase. Its `Debug` never shows the data subject.
#[derive(Clone)]
pub enum ErasureScope {
    /// Payloads older than their type's retention period at `now_micros`.
    Retention {
        /// The instant ages are measured at.
        now_micros: i64,
    },
    /// Every payload holding `subject` as a JSON string value anywhere in it (exact match).
    DataSubject {
        /// The data subject's identifier as it appears in payloads (an e-mail, a customer
        /// number). Personal data: it is matched, never recorded or logged.
        subject: String,
        /// The request's reference (a ticket number), recorded with each erasure.
        reference: Option<String>,
    },
}

impl std::fmt::Debug for ErasureScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErasureScope::Retention { now_micros } => f
                .debug_struct("Retention")
                .field("now_micros", now_micros)
                .finish(),
            ErasureScope::DataSubject { reference, .. } => f
                .debug_struct("DataSubject")
                .field("subject", &"<redacted>")
                .field("reference", reference)
                .finish(),
        }
    }
}

/// One payload erased (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedPayload {
    /// The log of the erased entry.
    pub log: LogName,
    /// Its index.
    pub index: u64,
    /// Its id.
    pub id: uuid::Uuid,
    /// Its type.
    pub entry_type: String,
    /// Index of its `entry.payload_erased` record in the same log; `None` in a dry run.
    pub record: Option<u64>,
}

fn matches_subject(v: &Value, subject: &str) -> bool {
    match v {
        Value::String(s) => s == subject,
        Value::Array(items) => items.iter().any(|i| matches_subject(i, subject)),
        Value::Object(o) => o.values().any(|i| matches_subject(i, subject)),
        _ => false,
    }
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ValidationError::one(
            field,
            format!("must be 1-{max} characters without control characters"),
        ));
    }
    Ok(())
}

impl<S: Backend> Governance<S> {
    /// Erases the payloads `scope` selects in every log of `tenant`, recording each erasure
    /// with `legal_basis` under `actor`; with `dry_run`, only lists them. Compacts the store
    /// afterwards so erased bytes leave the disk.
    pub async fn erase(
        &self,
        tenant: &TenantName,
        scope: &ErasureScope,
        legal_basis: &str,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Vec<ErasedPayload>, GovernanceError> {
        check_text("legal_basis", legal_basis, 256)?;
        if let ErasureScope::DataSubject { subject, reference } = scope {
            check_text("data_subject", subject, 1024)?;
            if let Some(r) = reference
                && (!(1..=128).contains(&r.len()) || !r.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(ValidationError::one(
                    "reference",
                    "must be 1-128 printable ASCII characters without spaces, e.g. DSR-2026-117",
                )
                .into());
            }
        }
        let tg = self.tenant(tenant).await?;
        let (retention, policy_entry) = {
            let state = tg.state.read().await;
            let (r, e) = state.retention();
            (r.clone(), e.map(|m| m.id.clone()))
        };
        let mut erased = Vec::new();
        for log in [LogName::Governance, LogName::Inference, LogName::Access] {
            let key = LogKey {
                tenant: tenant.clone(),
                log,
            };
            let before = match scope {
                ErasureScope::Retention { now_micros } => {
                    let shortest = retention
                        .types
                        .values()
                        .copied()
                        .chain([retention.default_days])
                        .min()
                        .unwrap_or(retention.default_days);
                    Some(now_micros.saturating_sub(i64::from(shortest) * MICROS_PER_DAY))
                }
                ErasureScope::DataSubject { .. } => None,
            };
            let mut from = 0;
            loop {
                let page = self
                    .appender
                    .store()
                    .payloads(&key, from, before, PAGE)
                    .await
                    .map_err(custody_ledger::LedgerError::from)?;
                let full = page.len() == PAGE as usize;
                for holder in &page {
                    let why = match scope {
                        ErasureScope::Retention { now_micros } => {
                            let days = retention.days(&holder.entry_type);
                            let expired = holder.time_micros
                                < now_micros.saturating_sub(i64::from(days) * MICROS_PER_DAY);
                            if !expired {
                                continue;
                            }
                            let mut b = Map::new();
                            b.insert("reason".into(), json!("retention"));
                            b.insert("retention_days".into(), json!(days));
                            if let Some(p) = &policy_entry {
                                b.insert("retention_policy".into(), json!(p));
                            }
                            b
                        }
                        ErasureScope::DataSubject { subject, reference } => {
                            let payload: Value =
                                serde_json::from_slice(&holder.payload.json).unwrap_or(Value::Null);
                            if !matches_subject(&payload, subject) {
                                continue;
                            }
                            let mut b = Map::new();
                            b.insert("reason".into(), json!("data_subject_request"));
                            if let Some(r) = reference {
                                b.insert("reference".into(), json!(r));
                            }
                            b
                        }
                    };
                    let record = if dry_run {
                        None
                    } else {
                        Some(
                            self.erase_one(&key, holder, why, legal_basis, actor)
                                .await?,
                        )
                    };
                    erased.push(ErasedPayload {
                        log,
                        index: holder.index,
                        id: holder.id,
                        entry_type: holder.entry_type.clone(),
                        record,
                    });
                }
                match page.last() {
                    Some(last) if full => from = last.index + 1,
                    _ => break,
                }
            }
        }
        if !dry_run && !erased.is_empty() {
            self.appender
                .store()
                .compact()
                .await
                .map_err(custody_ledger::LedgerError::from)?;
        }
        Ok(erased)
    }

    /// Records then erases one payload; returns the record's index.
    async fn erase_one(
        &self,
        key: &LogKey,
        holder: &PayloadHolder,
        mut body: Map<String, Value>,
        legal_basis: &str,
        actor: &Actor,
    ) -> Result<u64, GovernanceError> {
        let store = self.appender.store();
        let id = holder.id.to_string();
        let existing = store
            .find_entries(
                key,
                &EntryFilter {
                    entry_type: Some(types::PAYLOAD_ERASED.into()),
                    related_id: Some(id.clone()),
                    below_index: u64::MAX,
                    limit: 1,
                    ..EntryFilter::default()
                },
            )
            .await
            .map_err(custody_ledger::LedgerError::from)?;
        let record = match existing.first() {
            Some(e) => e.index,
            None => {
                let leaf = store
                    .entry(key, holder.index)
                    .await
                    .map_err(custody_ledger::LedgerError::from)?
                    .map(|e| e.leaf_hash.to_hex())
                    .unwrap_or_default();
                body.insert("log".into(), json!(key.log.as_str()));
                body.insert("index".into(), json!(holder.index));
                body.insert("leaf_hash".into(), json!(leaf));
                body.insert("entry_type".into(), json!(holder.entry_type));
                body.insert("legal_basis".into(), json!(legal_basis));
                let input = EntryInput {
                    id: None,
                    entry_type: types::PAYLOAD_ERASED.into(),
                    client_time: None,
                    actor: actor.clone(),
                    subject: SubjectRef {
                        kind: "entry".into(),
                        id: id.clone(),
                    },
                    related: vec![Related {
                        kind: "entry".into(),
                        id,
                        rel: "erases".into(),
                    }],
                    context: Context::default(),
                    body,
                    payload: None,
                };
                self.record_own(key, input).await?.index
            }
        };
        store
            .erase_payload(key, holder.index)
            .await
            .map_err(custody_ledger::LedgerError::from)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_data_subject() {
        let scope = ErasureScope::DataSubject {
            subject: "jane@example.com".into(),
            reference: Some("DSR-1".into()),
        };
        let shown = format!("{scope:?}");
        assert!(
            !shown.contains("jane") && shown.contains("DSR-1"),
            "{shown}"
        );
    }

    #[test]
    fn a_subject_matches_only_whole_string_values() {
        let p = json!({"applicant": {"email": "jane@example.com", "tags": ["vip", "x"]}, "n": 1});
        assert!(matches_subject(&p, "jane@example.com"));
        assert!(matches_subject(&p, "vip"));
        assert!(!matches_subject(&p, "jane"));
        assert!(!matches_subject(&p, "email"));
        assert!(!matches_subject(&p, "1"));
    }
}
