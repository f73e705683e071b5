//! Tamper evidence beyond proofs: deep reconciliation of every log against its stored bytes,
//! the witness check of a checkpoint a client holds, and key rotation. Discrepancies are
//! recorded as security events in the tenant's governance log.

use custody_api as api;
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::envelope::{
    Actor, ActorKind, Context, EntryInput, LogName, SubjectRef, TenantName, ValidationError,
};
use custody_core::merkle::verify_consistency;
use custody_core::note::NoteVerifier;
use custody_ledger::{KeyRotation, LedgerError};
use custody_store::{LogKey, StoreError};
use serde_json::{Map, Value, json};

use crate::access_log::Caller;
use crate::{Backend, Governance, GovernanceError, SYSTEM_ACTOR};

/// A stored log disagrees with its own hashes or checkpoints.
pub const INTEGRITY_FAILURE: &str = "security.integrity_failure";
/// A client holds a checkpoint this log cannot extend: a fork, or a rollback of the log.
pub const FORK_DETECTED: &str = "security.fork_detected";

fn system() -> Actor {
    Actor {
        kind: ActorKind::System,
        id: SYSTEM_ACTOR.into(),
    }
}

impl<S: Backend> Governance<S> {
    /// Appends a security event about one log to the tenant's governance log; a failure is
    /// logged, not returned, since the log may be the thing that is broken.
    async fn security_event(
        &self,
        tenant: &TenantName,
        entry_type: &str,
        log: LogName,
        body: Map<String, Value>,
    ) {
        let input = EntryInput {
            id: None,
            entry_type: entry_type.into(),
            client_time: None,
            actor: system(),
            subject: SubjectRef {
                kind: "log".into(),
                id: log.as_str().into(),
            },
            related: Vec::new(),
            context: Context::default(),
            body,
            payload: None,
        };
        let recorded = match self
            .record_governance(tenant, vec![input.clone()], Vec::new())
            .await
        {
            // The governance log the state is replayed from is itself damaged (the kind of
            // thing this event reports): record the event anyway, outside the state, under the
            // log's cross-server lock. The state ignores security events.
            Err(GovernanceError::Ledger(LedgerError::Corrupt(why))) => {
                tracing::warn!(tenant = %tenant, error = %why, "the governance state cannot be rebuilt; recording the security event without it");
                self.record_beside_state(tenant, input).await
            }
            other => other.map(|_| ()),
        };
        if let Err(e) = recorded {
            tracing::error!(tenant = %tenant, error = %e, "could not record a security event");
        }
    }

    /// Deep-verifies every log of a tenant from storage: every leaf hash recomputed from its
    /// envelope, every stored tree node from the leaves, every payload commitment reopened,
    /// every checkpoint's signature and root checked. Each log with problems is also recorded
    /// as `security.integrity_failure`.
    pub async fn reconcile(
        &self,
        tenant: &TenantName,
    ) -> Result<api::ReconcileReport, GovernanceError> {
        let audit = custody_verify::deep::audit_tenant(self.ledger.reader(), tenant, |_, _, _| {})
            .await
            .map_err(|e| LedgerError::from(StoreError::from(e)))?;
        for (log, found) in &audit.logs {
            if found.is_clean() {
                continue;
            }
            tracing::error!(tenant = %tenant, log = %log.as_str(), problems = found.problem_count, first = %found.problems.first().map(String::as_str).unwrap_or(""), "integrity check failed");
            let mut body = Map::new();
            body.insert("problem_count".into(), json!(found.problem_count));
            body.insert(
                "problems".into(),
                json!(found.problems.iter().take(10).collect::<Vec<_>>()),
            );
            self.security_event(tenant, INTEGRITY_FAILURE, *log, body)
                .await;
        }
        Ok(audit.into_report())
    }

    /// A witness's check of a checkpoint `caller` holds (a C2SP signed note): proves the log's
    /// latest checkpoint extends it. If the log cannot (the held root differs from the log's
    /// tree at that size, or the size is beyond it), a `security.fork_detected` event is
    /// recorded and [`GovernanceError::ForkDetected`] returned.
    pub async fn witness(
        &self,
        caller: &Caller,
        key: &LogKey,
        note: &str,
    ) -> Result<api::WitnessAnswer, GovernanceError> {
        // The checkpoint may predate a key rotation: any key the log has used will do.
        let vkey = self.ledger.verifier_key(key).await?;
        let mut keys = vec![vkey.clone()];
        keys.extend(
            self.ledger
                .key_history(key)
                .await?
                .into_iter()
                .map(|r| r.old_key),
        );
        let held = keys
            .iter()
            .filter_map(|k| NoteVerifier::parse(k).ok())
            .find_map(|v| SignedCheckpoint::open(note, &v).ok())
            .ok_or_else(|| {
                ValidationError::one(
                    "checkpoint",
                    format!(
                        "is not a checkpoint of this log signed by any of its keys (now {vkey})"
                    ),
                )
            })?;
        let latest = self.ledger.checkpoint(key).await?;
        let (old, new) = (held.checkpoint.size, latest.size);
        let hashes = if old == 0 || old >= new {
            Vec::new()
        } else {
            self.ledger.consistency_proof(key, old, new).await?
        };
        let forked = if old > new {
            Some(format!(
                "your checkpoint is of size {old} but this log has only {new} entries: the log was rolled back or forked"
            ))
        } else if old > 0
            && verify_consistency(old, new, &hashes, &held.checkpoint.root, &latest.root).is_err()
        {
            Some(format!(
                "your checkpoint of size {old} (root {}) is not a prefix of this log's tree of size {new} (root {}): the log forked",
                held.checkpoint.root.to_base64(),
                latest.root.to_base64()
            ))
        } else {
            None
        };
        if let Some(detail) = forked {
            let mut body = Map::new();
            body.insert("held_size".into(), json!(held.checkpoint.size));
            body.insert("held_root".into(), json!(held.checkpoint.root.to_base64()));
            body.insert("latest_size".into(), json!(latest.size));
            body.insert("reported_by".into(), json!(caller.principal.id));
            self.security_event(&key.tenant, FORK_DETECTED, key.log, body)
                .await;
            return Err(GovernanceError::ForkDetected(detail));
        }
        Ok(api::WitnessAnswer {
            old_size: held.checkpoint.size,
            new_size: latest.size,
            consistency: hashes.iter().map(|h| h.to_base64()).collect(),
            checkpoint: latest.note,
        })
    }

    /// Switches a log to a new signing key on `caller`'s request: the `key.rotated`
    /// announcement (old and new verifier keys) is committed alone and signed with the old
    /// key; every later checkpoint is signed with the new one. The ledger serialises it with
    /// every other write of the log, here and on other servers (the log's lock); the state
    /// skips the announcement, which no check depends on, when it next catches up.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        key: &LogKey,
    ) -> Result<KeyRotation, GovernanceError> {
        Ok(self.appender.rotate_key(key, caller.actor()).await?)
    }
}
