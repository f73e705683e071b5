//! Governed writes: what a client's submission must be (the caller as actor, a role for each
//! entry type), the checks an entry passes before it is appended, the refusals and security
//! events custody appends on its own account, and the state advanced after commit.

use custody_api::evidence::SecurityNotice;
use custody_auth::{Gate, Principal, Role};
use custody_core::envelope::{
    Actor, ActorKind, Context, EntryInput, LogName, Related, SubjectRef, ValidationError,
};
use custody_evidence::events::{kinds, types};
use custody_evidence::{
    Event, EventFields, GovernanceState, Missing, Refusal, ServingMismatch, approval,
    check_client_type, derived_links, home_log,
};
use custody_ledger::{AppendOutcome, LedgerError};
use custody_store::LogKey;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{Backend, Governance, GovernanceError};

/// The principal id custody writes its own entries under.
pub const SYSTEM_ACTOR: &str = "custody";

/// Most entries one submission may carry.
pub const MAX_ENTRIES_PER_REQUEST: usize = 100_000;

/// The result of a governed append.
#[derive(Debug)]
pub struct Ingested {
    /// Where each entry landed.
    pub outcome: AppendOutcome,
    /// Per entry: the security event recorded about it, if its weights did not match.
    pub notices: Vec<Option<SecurityNotice>>,
}

fn fields(input: &EntryInput) -> EventFields<'_> {
    EventFields {
        entry_type: &input.entry_type,
        actor: &input.actor,
        subject: &input.subject,
        related: &input.related,
        client_time: input.client_time.as_deref(),
        body: &input.body,
    }
}

fn at(e: ValidationError, i: usize, many: bool) -> ValidationError {
    if many { e.at_item(i) } else { e }
}

fn refused_type(attempted: &str) -> &'static str {
    match attempted {
        types::ROLLBACK => types::ROLLBACK_REFUSED,
        types::DEPLOYMENT => types::DEPLOYMENT_REFUSED,
        _ => types::PROMOTION_REFUSED,
    }
}

impl<S: Backend> Governance<S> {
    /// Appends a client's entries (parsed JSON objects) to a tenant's log, atomically, as
    /// `caller`: the caller becomes each entry's actor (an entry naming someone else is
    /// refused), each entry's type must be one the caller's roles may write, and then the
    /// checks of [`Governance::append`] apply. `many` says the entries came as a list, so
    /// field errors are named by position.
    pub async fn submit(
        &self,
        key: &LogKey,
        values: Vec<Value>,
        many: bool,
        caller: &Principal,
    ) -> Result<Ingested, GovernanceError> {
        open_to_clients(key)?;
        let inputs = submitted_entries(values, many, caller)?;
        self.check_entry_roles(caller, key, &inputs).await?;
        self.append(key, inputs).await
    }

    /// Refuses entries whose type needs a role the caller lacks, and approver keys registered
    /// for someone who is not an approver of the tenant.
    async fn check_entry_roles(
        &self,
        caller: &Principal,
        key: &LogKey,
        inputs: &[EntryInput],
    ) -> Result<(), GovernanceError> {
        let tenant = &key.tenant;
        let many = inputs.len() > 1;
        for (i, input) in inputs.iter().enumerate() {
            let action = custody_auth::entry_action(&input.entry_type);
            if let Gate::Roles(roles) = action.gate()
                && !caller.may(tenant.as_str(), roles)
            {
                let at = if many {
                    format!("[{i}] ")
                } else {
                    String::new()
                };
                return Err(GovernanceError::Forbidden(format!(
                    "{at}{} entries need the role {}; this principal has {}",
                    input.entry_type,
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    caller.roles.to_csv()
                )));
            }
            if input.entry_type == types::APPROVER_KEY_REGISTERED {
                let approver = &input.subject.id;
                let is_approver = self
                    .auth
                    .principal_in(tenant.as_str(), approver)
                    .await
                    .is_ok_and(|p| p.roles.has(Role::Approver));
                if !is_approver {
                    let field = if many {
                        format!("[{i}].subject.id")
                    } else {
                        "subject.id".into()
                    };
                    return Err(ValidationError::one(
                        &field,
                        format!(
                            "{approver:?} is not a principal of tenant {tenant} with the approver role: create one with `custody principal create --role approver` and register the key for its id"
                        ),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Appends entries atomically to a tenant's log after the checks their types call for,
    /// with the actors they name. A front end calls [`Governance::submit`] instead, which makes
    /// the caller the actor and checks its roles first; this is for callers that established
    /// the actors themselves (an import of evidence recorded elsewhere, a replay in tests).
    pub async fn append(
        &self,
        key: &LogKey,
        mut inputs: Vec<EntryInput>,
    ) -> Result<Ingested, GovernanceError> {
        open_to_clients(key)?;
        if inputs.is_empty() {
            return Err(ValidationError::one("", "no entries to append").into());
        }
        let many = inputs.len() > 1;
        let mut errors = Vec::new();
        for (i, input) in inputs.iter_mut().enumerate() {
            if let Err(e) = check_client_type(&input.entry_type) {
                errors.extend(at(e, i, many).errors);
                continue;
            }
            if let Some(home) = home_log(&input.entry_type)
                && home != key.log
            {
                errors.extend(
                    at(
                        ValidationError::one(
                            "type",
                            format!(
                                "{} entries belong in the {home} log, not {}",
                                input.entry_type, key.log
                            ),
                        ),
                        i,
                        many,
                    )
                    .errors,
                );
                continue;
            }
            let extra = derived_links(&fields(input));
            input.related.extend(extra);
        }
        if !errors.is_empty() {
            return Err(ValidationError { errors }.into());
        }
        match key.log {
            LogName::Governance => self.append_governance(key, inputs, many).await,
            LogName::Inference => self.append_inference(key, inputs, many).await,
            LogName::Access => Err(custody_only()),
        }
    }

    async fn append_governance(
        &self,
        key: &LogKey,
        mut inputs: Vec<EntryInput>,
        many: bool,
    ) -> Result<Ingested, GovernanceError> {
        // Entries no check depends on (user-defined types that link to nothing) need neither
        // the state nor the writer lock: they are appended at once and group-committed with
        // each other. The state ignores them; it skips their indexes when it next catches up.
        if inputs
            .iter()
            .all(|i| i.related.is_empty() && matches!(Event::read(&fields(i)), Ok(None)))
        {
            let outcome = self.appender.append(key, &inputs).await?;
            let notices = vec![None; outcome.results.len()];
            return Ok(Ingested { outcome, notices });
        }
        let tg = self.tenant(&key.tenant).await?;
        let _writer = self.lock_writer(&key.tenant, &tg).await?;
        self.catch_up(&key.tenant, &tg).await?;

        let ids: Vec<Uuid> = inputs.iter().filter_map(|i| i.id).collect();
        let existing: Vec<Uuid> = if ids.is_empty() {
            Vec::new()
        } else {
            self.appender
                .store()
                .existing_ids(key, &ids)
                .await
                .map_err(LedgerError::from)?
                .into_iter()
                .map(|e| e.id)
                .collect()
        };

        let guard = tg.state.read().await;
        let mut scratch: Option<GovernanceState> = many.then(|| guard.clone());
        let mut errors = Vec::new();
        for (i, input) in inputs.iter_mut().enumerate() {
            let state: &GovernanceState = scratch.as_ref().unwrap_or(&guard);
            let retry = input.id.is_some_and(|id| existing.contains(&id));
            if input.entry_type == types::APPROVAL {
                match approval::derive_body(
                    state,
                    &input.subject,
                    &input.body,
                    input.payload.as_ref(),
                ) {
                    Ok(body) => input.body = body,
                    Err(e) if !retry => {
                        errors.extend(at(e, i, many).errors);
                        continue;
                    }
                    Err(_) => {}
                }
            }
            let event = match Event::read(&fields(input)) {
                Ok(ev) => ev,
                Err(e) => {
                    errors.extend(at(e, i, many).errors);
                    continue;
                }
            };
            if retry {
                continue;
            }
            let checked = match &event {
                Some(ev) => state.check(ev, &fields(input)),
                None => state.check_links(&fields(input)),
            };
            match checked {
                Ok(()) => {}
                Err(Refusal::Invalid(e)) => {
                    errors.extend(at(e, i, many).errors);
                    continue;
                }
                Err(Refusal::Conflict(c)) => {
                    return Err(GovernanceError::Conflict(if many {
                        format!("[{i}]: {c}")
                    } else {
                        c
                    }));
                }
                Err(Refusal::Gate(missing)) => {
                    drop(guard);
                    return Err(self.refuse(key, &tg, &inputs[i], missing).await);
                }
            }
            if let Some(s) = scratch.as_mut() {
                let size = s.size();
                s.apply(
                    event.as_ref(),
                    custody_evidence::EntryMeta {
                        id: input.id.map(|u| u.to_string()).unwrap_or_default(),
                        index: size,
                        time_micros: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64
                            / 1000,
                        actor: input.actor.id.clone(),
                    },
                );
            }
        }
        drop(scratch);
        drop(guard);
        if !errors.is_empty() {
            return Err(ValidationError { errors }.into());
        }

        let outcome = self.append_own(key, &tg, inputs, Vec::new()).await?;
        let notices = vec![None; outcome.results.len()];
        Ok(Ingested { outcome, notices })
    }

    /// Records a gate refusal and returns the error that reports it.
    async fn refuse(
        &self,
        key: &LogKey,
        tg: &crate::TenantGovernance,
        attempted: &EntryInput,
        missing: Vec<Missing>,
    ) -> GovernanceError {
        let mut body = Map::new();
        body.insert("attempted_type".into(), json!(attempted.entry_type));
        body.insert(
            "attempted_body".into(),
            Value::Object(attempted.body.clone()),
        );
        body.insert(
            "missing".into(),
            serde_json::to_value(&missing).unwrap_or(Value::Null),
        );
        let refusal = EntryInput {
            id: None,
            entry_type: refused_type(&attempted.entry_type).to_owned(),
            client_time: attempted.client_time.clone(),
            actor: attempted.actor.clone(),
            subject: attempted.subject.clone(),
            related: attempted.related.clone(),
            context: attempted.context.clone(),
            body,
            payload: None,
        };
        let appended = match self.append_own(key, tg, vec![refusal], Vec::new()).await {
            Ok(outcome) => outcome.results.into_iter().next(),
            Err(e) => return e,
        };
        match appended {
            Some(refusal) => GovernanceError::Refused {
                attempted: attempted.entry_type.clone(),
                missing,
                refusal,
            },
            None => LedgerError::Unavailable("the refusal was not recorded".into()).into(),
        }
    }

    async fn append_inference(
        &self,
        key: &LogKey,
        inputs: Vec<EntryInput>,
        many: bool,
    ) -> Result<Ingested, GovernanceError> {
        let tg = self.tenant(&key.tenant).await?;
        let mut mismatches: Vec<(usize, ServingMismatch, String, String)> = Vec::new();
        {
            let state = tg.state.read().await;
            let mut errors = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                match Event::read(&fields(input)) {
                    Ok(Some(Event::Inference(inf))) => match state.check_inference(&inf) {
                        Ok(None) => {}
                        Ok(Some(m)) => mismatches.push((i, m, inf.request_id, inf.deployment_id)),
                        Err(Refusal::Invalid(e)) => errors.extend(at(e, i, many).errors),
                        Err(other) => errors.extend(
                            at(ValidationError::one("", other.to_string()), i, many).errors,
                        ),
                    },
                    Ok(_) => {}
                    Err(e) => errors.extend(at(e, i, many).errors),
                }
            }
            if !errors.is_empty() {
                return Err(ValidationError { errors }.into());
            }
        }
        let outcome = self.appender.append(key, &inputs).await?;
        let mut notices = vec![None; outcome.results.len()];
        let fresh: Vec<_> = mismatches
            .into_iter()
            .filter(|(i, ..)| !outcome.results[*i].existing)
            .collect();
        if fresh.is_empty() {
            return Ok(Ingested { outcome, notices });
        }
        let gov = crate::Governance::<S>::governance_key(&key.tenant);
        let events: Vec<EntryInput> = fresh
            .iter()
            .map(|(i, m, request_id, deployment)| {
                let r = &outcome.results[*i];
                security_event(m, request_id, deployment, r.index, r.id)
            })
            .collect();
        let _writer = self.lock_writer(&key.tenant, &tg).await?;
        self.catch_up(&key.tenant, &tg).await?;
        let recorded = self.append_own(&gov, &tg, events, Vec::new()).await?;
        for ((i, m, request_id, _), sec) in fresh.into_iter().zip(recorded.results) {
            tracing::warn!(tenant = %key.tenant, request_id = %request_id, claimed = %m.claimed, environment = %m.environment, "inference claims weights that were not serving; recorded a security event");
            notices[i] = Some(SecurityNotice {
                request_id,
                claimed: m.claimed,
                expected: m.expected,
                security_index: sec.index,
                security_id: sec.id.to_string(),
            });
        }
        Ok(Ingested { outcome, notices })
    }
}

fn security_event(
    m: &ServingMismatch,
    request_id: &str,
    deployment: &str,
    inference_index: u64,
    inference_id: Uuid,
) -> EntryInput {
    let mut body = Map::new();
    body.insert("environment".into(), json!(m.environment));
    body.insert("claimed".into(), json!(m.claimed));
    if let Some(e) = &m.expected {
        body.insert("expected".into(), json!(e));
    }
    if let Some(c) = &m.change {
        body.insert("serving_change".into(), json!(c));
    }
    body.insert("inference_index".into(), json!(inference_index));
    EntryInput {
        id: None,
        entry_type: types::SERVING_MISMATCH.to_owned(),
        client_time: None,
        actor: Actor {
            kind: ActorKind::System,
            id: SYSTEM_ACTOR.to_owned(),
        },
        subject: SubjectRef {
            kind: kinds::INFERENCE.to_owned(),
            id: request_id.to_owned(),
        },
        related: vec![
            Related {
                kind: kinds::ENTRY.to_owned(),
                id: inference_id.to_string(),
                rel: "about".to_owned(),
            },
            Related {
                kind: kinds::DEPLOYMENT.to_owned(),
                id: deployment.to_owned(),
                rel: rel_served_by(),
            },
        ],
        context: Context::default(),
        body,
        payload: None,
    }
}

fn rel_served_by() -> String {
    custody_evidence::events::rels::SERVED_BY.to_owned()
}

/// A client's entries as inputs: each validated, the caller filled in as actor where none is
/// given and refused where another is; errors named by position when there are `many`.
fn submitted_entries(
    values: Vec<Value>,
    many: bool,
    caller: &Principal,
) -> Result<Vec<EntryInput>, GovernanceError> {
    if values.is_empty() {
        return Err(ValidationError::one("", "no entries: send at least one").into());
    }
    if values.len() > MAX_ENTRIES_PER_REQUEST {
        return Err(ValidationError::one(
            "",
            format!("at most {MAX_ENTRIES_PER_REQUEST} entries per request; split the upload"),
        )
        .into());
    }
    let me = json!({"kind": caller.kind.as_str(), "id": caller.id});
    let mut out = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (i, mut v) in values.into_iter().enumerate() {
        if let Value::Object(o) = &mut v
            && !o.contains_key("actor")
        {
            o.insert("actor".into(), me.clone());
        }
        match EntryInput::from_json(&v) {
            Ok(input)
                if input.actor.id != caller.id
                    || input.actor.kind.as_str() != caller.kind.as_str() =>
            {
                errors.extend(
                    at(
                        ValidationError::one(
                            "actor",
                            format!("must be the caller, {me}: omit actor and custody fills it in"),
                        ),
                        i,
                        many,
                    )
                    .errors,
                );
            }
            Ok(input) => out.push(input),
            Err(e) => errors.extend(at(e, i, many).errors),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ValidationError { errors }.into())
    }
}

fn custody_only() -> GovernanceError {
    GovernanceError::Forbidden(
        "the access log is written by custody only: it records reads and refusals itself".into(),
    )
}

/// Refuses entries from outside for the access log, which custody alone writes.
fn open_to_clients(key: &LogKey) -> Result<(), GovernanceError> {
    match key.log {
        LogName::Access => Err(custody_only()),
        LogName::Governance | LogName::Inference => Ok(()),
    }
}
