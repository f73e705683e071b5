//! The governance state a tenant's governance log implies: registered datasets, runs, model
//! versions, approver keys, standing approvals, the policy, and what serves where over time.
//!
//! It is a projection: rebuilt by replaying the log, advanced by each appended entry, never a
//! source of truth of its own. Every check a write must pass before it is appended (references
//! resolve, transitions start where the environment stands, the gate is satisfied) and every
//! answer about serving is computed here, from entries a caller can prove.

use std::collections::{BTreeMap, HashMap};

use custody_core::envelope::ValidationError;
use custody_core::signing::PublicKey;
use serde::Serialize;

use crate::events::{Event, EventFields, Transition, kinds};
use crate::policy::{GateRule, Policy};

/// Where an applied entry is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryMeta {
    /// Entry id.
    pub id: String,
    /// Log index.
    pub index: u64,
    /// Server receive time, microseconds since the epoch.
    pub time_micros: i64,
    /// The actor's principal id.
    pub actor: String,
}

/// Why a write was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A field or reference is wrong; nothing is recorded.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The write contradicts what is recorded (a different registration under the same id).
    #[error("{0}")]
    Conflict(String),
    /// The gate refused it; the refusal itself is recorded.
    #[error("the gate refused it: {}", .0.iter().map(|m| m.detail.as_str()).collect::<Vec<_>>().join("; "))]
    Gate(Vec<Missing>),
}

impl From<ValidationError> for Refusal {
    fn from(e: ValidationError) -> Self {
        Refusal::Invalid(e)
    }
}

/// One thing a gate found missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// Machine-readable reason: `approvals`, `criterion`, `rejected`, `separation_of_duties`,
    /// `revoked_key`, `unknown_model`, `retired`, `not_serving`, `from_mismatch`,
    /// `never_served`, `not_admitted`.
    pub code: String,
    /// What is missing, for a person.
    pub detail: String,
    /// The entries the reason is about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<String>,
}

fn missing(code: &str, detail: impl Into<String>, entries: Vec<String>) -> Missing {
    Missing {
        code: code.to_owned(),
        detail: detail.into(),
        entries,
    }
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Model name.
    pub name: String,
    /// Training run that produced it.
    pub run_id: String,
    /// Its registration.
    pub entry: EntryMeta,
    /// Latest card version (0 when it has none).
    pub card_version: u64,
    /// Its retirement, if retired.
    pub retired: Option<EntryMeta>,
}

#[derive(Debug, Clone)]
struct RunInfo {
    trainer: String,
    entry: EntryMeta,
}

#[derive(Debug, Clone)]
struct KeyInfo {
    approver: String,
    revoked: bool,
    key: PublicKey,
    entry: EntryMeta,
}

#[derive(Debug, Clone)]
struct StandingApproval {
    approve: bool,
    criteria: Vec<(String, bool)>,
    key_fingerprint: String,
    entry: EntryMeta,
}

/// One change of what serves in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServingChange {
    /// `promotion`, `rollback` or `retirement`.
    pub kind: String,
    /// Version serving before.
    pub from: Option<String>,
    /// Version serving after (None: nothing admitted).
    pub to: Option<String>,
    /// The entry that made the change.
    pub entry: EntryMeta,
}

/// A recorded deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentInfo {
    /// Environment.
    pub environment: String,
    /// Version rolled out.
    pub version_hash: String,
    /// Its entry.
    pub entry: EntryMeta,
}

/// The outcome of evaluating the gate for a version and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateReport {
    /// The rule applied.
    pub rule: GateRule,
    /// Approvals that count, by entry id.
    pub counted: Vec<String>,
    /// Distinct approvers counted.
    pub approvers: Vec<String>,
    /// Empty when the gate is satisfied.
    pub missing: Vec<Missing>,
}

impl GateReport {
    /// True when nothing is missing.
    pub fn satisfied(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A mismatch between the weights an inference claims and what served in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServingMismatch {
    /// Environment of the deployment.
    pub environment: String,
    /// What the inference says served it.
    pub claimed: String,
    /// What the ledger says served then (None: nothing was admitted).
    pub expected: Option<String>,
    /// Entry of the serving change in force at the request time, if any.
    pub change: Option<String>,
}

/// The governance state of one tenant.
#[derive(Debug, Clone, Default)]
pub struct GovernanceState {
    datasets: HashMap<String, EntryMeta>,
    runs: HashMap<String, RunInfo>,
    models: HashMap<String, ModelInfo>,
    keys: HashMap<String, KeyInfo>,
    approvals: HashMap<(String, String), BTreeMap<String, StandingApproval>>,
    policy: Policy,
    policy_entry: Option<EntryMeta>,
    retention: crate::retention::Retention,
    retention_entry: Option<EntryMeta>,
    serving: BTreeMap<String, Vec<ServingChange>>,
    deployments: HashMap<String, DeploymentInfo>,
    incidents: HashMap<String, String>,
    /// Entries applied, i.e. the log size the state reflects.
    size: u64,
}

impl GovernanceState {
    /// The governance log size this state reflects.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The retention policy in force and the entry that set it (None: the built-in default).
    pub fn retention(&self) -> (&crate::retention::Retention, Option<&EntryMeta>) {
        (&self.retention, self.retention_entry.as_ref())
    }

    /// The policy in force and the entry that set it (None: the built-in default).
    pub fn policy(&self) -> (&Policy, Option<&EntryMeta>) {
        (&self.policy, self.policy_entry.as_ref())
    }

    /// A registered model version.
    pub fn model(&self, version_hash: &str) -> Option<&ModelInfo> {
        self.models.get(version_hash)
    }

    /// The registration entry of a dataset version.
    pub fn dataset(&self, digest: &str) -> Option<&EntryMeta> {
        self.datasets.get(digest)
    }

    /// The registration entry of a training run and who ran it.
    pub fn run(&self, run_id: &str) -> Option<(&EntryMeta, &str)> {
        self.runs
            .get(run_id)
            .map(|r| (&r.entry, r.trainer.as_str()))
    }

    /// Every deployment, by id.
    pub fn deployments(&self) -> impl Iterator<Item = (&str, &DeploymentInfo)> {
        self.deployments.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A deployment.
    pub fn deployment(&self, id: &str) -> Option<&DeploymentInfo> {
        self.deployments.get(id)
    }

    /// Every environment with its serving changes, oldest first.
    pub fn environments(&self) -> impl Iterator<Item = (&str, &[ServingChange])> {
        self.serving.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The public key registered under a fingerprint, with its approver, if not revoked.
    pub fn approver_key(&self, fingerprint: &str) -> Option<(&str, &PublicKey)> {
        self.keys
            .get(fingerprint)
            .filter(|k| !k.revoked)
            .map(|k| (k.approver.as_str(), &k.key))
    }

    /// Every registered key (revoked or not): fingerprint, approver, key, registration.
    pub fn registered_keys(&self) -> impl Iterator<Item = (&str, &str, &PublicKey, &EntryMeta)> {
        self.keys
            .iter()
            .map(|(fp, k)| (fp.as_str(), k.approver.as_str(), &k.key, &k.entry))
    }

    /// Every usable key, for finding which one signed an envelope.
    pub fn approver_keys(&self) -> impl Iterator<Item = (&str, &str, &PublicKey)> {
        self.keys
            .iter()
            .filter(|(_, k)| !k.revoked)
            .map(|(fp, k)| (fp.as_str(), k.approver.as_str(), &k.key))
    }

    /// The serving change in force in `env` at `micros` (the last one at or before it).
    pub fn change_at(&self, env: &str, micros: i64) -> Option<&ServingChange> {
        let changes = self.serving.get(env)?;
        let n = changes.partition_point(|c| c.entry.time_micros <= micros);
        n.checked_sub(1).map(|i| &changes[i])
    }

    /// The version serving in `env` at `micros`.
    pub fn serving_at(&self, env: &str, micros: i64) -> Option<&str> {
        self.change_at(env, micros).and_then(|c| c.to.as_deref())
    }

    /// The version serving in `env` now.
    pub fn serving_now(&self, env: &str) -> Option<&str> {
        self.serving.get(env)?.last()?.to.as_deref()
    }

    /// Every serving change involving a version, in every environment, oldest first.
    pub fn history(&self, version_hash: &str) -> Vec<(&str, &ServingChange)> {
        let mut out: Vec<(&str, &ServingChange)> = self
            .serving
            .iter()
            .flat_map(|(env, changes)| changes.iter().map(move |c| (env.as_str(), c)))
            .filter(|(_, c)| {
                c.to.as_deref() == Some(version_hash) || c.from.as_deref() == Some(version_hash)
            })
            .collect();
        out.sort_by_key(|(_, c)| c.entry.index);
        out
    }

    /// Deployments of a version.
    pub fn deployments_of(&self, version_hash: &str) -> Vec<(&str, &DeploymentInfo)> {
        let mut out: Vec<_> = self
            .deployments
            .iter()
            .filter(|(_, d)| d.version_hash == version_hash)
            .map(|(id, d)| (id.as_str(), d))
            .collect();
        out.sort_by_key(|(_, d)| d.entry.index);
        out
    }

    /// Evaluates the gate: do the standing approvals of `version_hash` for `target` satisfy
    /// the policy in force?
    pub fn gate(&self, version_hash: &str, target: &str) -> GateReport {
        let rule = self.policy.rule(target).clone();
        let mut out = GateReport {
            rule: rule.clone(),
            counted: Vec::new(),
            approvers: Vec::new(),
            missing: Vec::new(),
        };
        let Some(model) = self.models.get(version_hash) else {
            out.missing.push(missing(
                "unknown_model",
                format!("{version_hash} is not a registered model version"),
                vec![],
            ));
            return out;
        };
        if let Some(r) = &model.retired {
            out.missing.push(missing(
                "retired",
                format!("{version_hash} was retired"),
                vec![r.id.clone()],
            ));
        }
        let trainer = self.runs.get(&model.run_id).map(|r| r.trainer.as_str());
        let mut excluded = Vec::new();
        let mut passed: HashMap<&str, Vec<String>> = HashMap::new();
        let mut failed: Vec<Missing> = Vec::new();
        let empty = BTreeMap::new();
        let standing = self
            .approvals
            .get(&(version_hash.to_owned(), target.to_owned()))
            .unwrap_or(&empty);
        for (approver, a) in standing {
            if !a.approve {
                out.missing.push(missing(
                    "rejected",
                    format!("approver {approver} rejected {version_hash} for {target}"),
                    vec![a.entry.id.clone()],
                ));
                continue;
            }
            if self.keys.get(&a.key_fingerprint).is_none_or(|k| k.revoked) {
                excluded.push(missing(
                    "revoked_key",
                    format!(
                        "the approval by {approver} does not count: its key {} was revoked",
                        a.key_fingerprint
                    ),
                    vec![a.entry.id.clone()],
                ));
                continue;
            }
            if rule.separation_of_duties && trainer == Some(approver.as_str()) {
                excluded.push(missing(
                    "separation_of_duties",
                    format!(
                        "the approval by {approver} does not count: {approver} ran training run {}",
                        model.run_id
                    ),
                    vec![a.entry.id.clone()],
                ));
                continue;
            }
            for (name, ok) in &a.criteria {
                if *ok {
                    passed.entry(name).or_default().push(a.entry.id.clone());
                } else if rule.required_criteria.contains(name) {
                    failed.push(missing(
                        "criterion",
                        format!("criterion {name} failed in the approval by {approver}"),
                        vec![a.entry.id.clone()],
                    ));
                }
            }
            out.counted.push(a.entry.id.clone());
            out.approvers.push(approver.clone());
        }
        let have = out.approvers.len();
        if have < rule.min_approvals as usize {
            let who = if have == 0 {
                "none".to_owned()
            } else {
                out.approvers.join(", ")
            };
            out.missing.push(missing(
                "approvals",
                format!(
                    "{target} needs approvals from {} distinct approvers; {have} count ({who})",
                    rule.min_approvals
                ),
                vec![],
            ));
            out.missing.extend(excluded);
        }
        out.missing.extend(failed);
        for name in &rule.required_criteria {
            if !passed.contains_key(name.as_str()) {
                out.missing.push(missing(
                    "criterion",
                    format!("criterion {name} has not passed in any counted approval"),
                    vec![],
                ));
            }
        }
        out
    }

    /// The serving gate: may `version_hash` serve in `env` now? It may when it is the version
    /// the ledger says serves there (promoted through the gate, or rolled back to), is not
    /// retired, and its approvals still satisfy the policy in force.
    pub fn admit(&self, version_hash: &str, env: &str) -> GateReport {
        let mut report = self.gate(version_hash, env);
        if self.models.contains_key(version_hash) {
            match self.serving_now(env) {
                Some(v) if v == version_hash => {}
                Some(v) => report.missing.push(missing(
                    "not_serving",
                    format!("{env} serves {v}, not {version_hash}"),
                    self.serving
                        .get(env)
                        .and_then(|c| c.last())
                        .map(|c| vec![c.entry.id.clone()])
                        .unwrap_or_default(),
                )),
                None => report.missing.push(missing(
                    "not_serving",
                    format!("no version has been promoted to {env}"),
                    vec![],
                )),
            }
        }
        report
    }

    /// Checks that an inference names a known deployment, and whether the weights it claims
    /// served in that deployment's environment at its request time (give or take the
    /// policy's clock skew). `Ok(Some(_))` is a mismatch to record as a security event.
    pub fn check_inference(
        &self,
        inf: &crate::events::Inference,
    ) -> Result<Option<ServingMismatch>, Refusal> {
        let Some(dep) = self.deployments.get(&inf.deployment_id) else {
            return Err(Refusal::Invalid(ValidationError::one(
                "related",
                format!(
                    "deployment {} is not recorded in this tenant's governance log",
                    inf.deployment_id
                ),
            )));
        };
        let skew = i64::try_from(self.policy.clock_skew_ms).unwrap_or(0) * 1000;
        let (lo, hi) = (inf.requested_micros - skew, inf.requested_micros + skew);
        let env = &dep.environment;
        let mut candidates = vec![self.serving_at(env, lo)];
        if let Some(changes) = self.serving.get(env) {
            candidates.extend(
                changes
                    .iter()
                    .filter(|c| c.entry.time_micros > lo && c.entry.time_micros <= hi)
                    .map(|c| c.to.as_deref()),
            );
        }
        if candidates.contains(&Some(inf.version_hash.as_str())) {
            return Ok(None);
        }
        let change = self.change_at(env, inf.requested_micros);
        Ok(Some(ServingMismatch {
            environment: env.clone(),
            claimed: inf.version_hash.clone(),
            expected: change.and_then(|c| c.to.clone()),
            change: change.map(|c| c.entry.id.clone()),
        }))
    }

    /// Checks a client's event against the state before it is appended. `actor` is the
    /// entry's actor id.
    pub fn check(&self, event: &Event, fields: &EventFields<'_>) -> Result<(), Refusal> {
        self.check_links(fields)?;
        match event {
            Event::DatasetVersion(d) => {
                if let Some(e) = self.datasets.get(&d.digest) {
                    return Err(Refusal::Conflict(format!(
                        "dataset version {} is already registered (entry {})",
                        d.digest, e.id
                    )));
                }
            }
            Event::TrainingRun(r) => {
                if let Some(e) = self.runs.get(&r.run_id) {
                    return Err(Refusal::Conflict(format!(
                        "training run {} is already recorded (entry {})",
                        r.run_id, e.entry.id
                    )));
                }
            }
            Event::ModelVersion(m) => {
                if let Some(e) = self.models.get(&m.version_hash) {
                    return Err(Refusal::Conflict(format!(
                        "model version {} is already registered as {} (entry {})",
                        m.version_hash, e.name, e.entry.id
                    )));
                }
            }
            Event::ModelCard(c) => {
                let model = self.known_model(&c.version_hash, "subject.id")?;
                if c.card_version != model.card_version + 1 {
                    return Err(Refusal::Conflict(format!(
                        "{} has card version {}; the next card is version {}",
                        c.version_hash,
                        model.card_version,
                        model.card_version + 1
                    )));
                }
                for d in &c.datasets {
                    if !self.datasets.contains_key(d) {
                        return Err(Refusal::Invalid(ValidationError::one(
                            "body",
                            format!("dataset version {d} is not registered"),
                        )));
                    }
                }
            }
            Event::ApproverKeyRegistered(k) => {
                let key = PublicKey::from_pem(&k.public_key_pem)
                    .map_err(|e| ValidationError::one("body.public_key", e.to_string()))?;
                if let Some(existing) = self.keys.get(&key.fingerprint()) {
                    return Err(Refusal::Conflict(format!(
                        "key {} is already registered for approver {}",
                        key.fingerprint(),
                        existing.approver
                    )));
                }
            }
            Event::ApproverKeyRevoked {
                approver,
                key_fingerprint,
            } => match self.keys.get(key_fingerprint) {
                Some(k) if &k.approver == approver && !k.revoked => {}
                Some(k) if k.revoked => {
                    return Err(Refusal::Conflict(format!(
                        "key {key_fingerprint} is already revoked"
                    )));
                }
                _ => {
                    return Err(Refusal::Invalid(ValidationError::one(
                        "body.key_fingerprint",
                        format!("approver {approver} has no registered key {key_fingerprint}"),
                    )));
                }
            },
            Event::Approval(a) => {
                self.known_model(&a.version_hash, "subject.id")?;
            }
            Event::Retention(_) => {}
            Event::Policy(p) => {
                if p.targets.is_empty() {
                    return Err(Refusal::Invalid(ValidationError::one(
                        "body.targets",
                        "name at least one target, e.g. {\"production\": {\"min_approvals\": 2}}",
                    )));
                }
            }
            Event::Promotion(t) => self.check_promotion(t)?,
            Event::Rollback(t) => self.check_rollback(t)?,
            Event::Deployment(d) => {
                if let Some(e) = self.deployments.get(&d.deployment_id) {
                    return Err(Refusal::Conflict(format!(
                        "deployment {} is already recorded (entry {})",
                        d.deployment_id, e.entry.id
                    )));
                }
                self.known_model(&d.version_hash, "body.version_hash")?;
                let report = self.admit(&d.version_hash, &d.environment);
                if !report.satisfied() {
                    return Err(Refusal::Gate(report.missing));
                }
            }
            Event::Retirement { version_hash } => {
                let m = self.known_model(version_hash, "subject.id")?;
                if let Some(r) = &m.retired {
                    return Err(Refusal::Conflict(format!(
                        "{version_hash} was already retired (entry {})",
                        r.id
                    )));
                }
            }
            Event::Incident(i) => {
                let known = self.incidents.get(&i.incident_id);
                match (i.status.as_str(), known.map(String::as_str)) {
                    ("opened", Some(_)) => {
                        return Err(Refusal::Conflict(format!(
                            "incident {} is already open",
                            i.incident_id
                        )));
                    }
                    ("updated" | "closed", None) => {
                        return Err(Refusal::Invalid(ValidationError::one(
                            "subject.id",
                            format!("incident {} was never opened", i.incident_id),
                        )));
                    }
                    ("updated" | "closed", Some("closed")) => {
                        return Err(Refusal::Conflict(format!(
                            "incident {} is closed",
                            i.incident_id
                        )));
                    }
                    _ => {}
                }
            }
            Event::Inference(_) | Event::Recorded => {}
        }
        Ok(())
    }

    fn known_model(&self, hash: &str, field: &str) -> Result<&ModelInfo, Refusal> {
        self.models.get(hash).ok_or_else(|| {
            Refusal::Invalid(ValidationError::one(
                field,
                format!("{hash} is not a registered model version: register it first (model_version.registered)"),
            ))
        })
    }

    /// Links to kinds this state knows must name something registered; other kinds (user
    /// kinds, inferences, entries) are not checked here.
    pub fn check_links(&self, fields: &EventFields<'_>) -> Result<(), Refusal> {
        let mut errors = Vec::new();
        for (i, r) in fields.related.iter().enumerate() {
            let known = match r.kind.as_str() {
                kinds::DATASET_VERSION => self.datasets.contains_key(&r.id),
                kinds::TRAINING_RUN => self.runs.contains_key(&r.id),
                kinds::MODEL_VERSION => self.models.contains_key(&r.id),
                kinds::DEPLOYMENT => self.deployments.contains_key(&r.id),
                kinds::INCIDENT => self.incidents.contains_key(&r.id),
                kinds::APPROVER => self.keys.values().any(|k| k.approver == r.id),
                _ => true,
            };
            if !known {
                errors.push(custody_core::envelope::FieldError {
                    field: format!("related[{i}].id"),
                    message: format!(
                        "no {} {} is recorded in this tenant's governance log",
                        r.kind, r.id
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Invalid(ValidationError { errors }))
        }
    }

    fn check_from(&self, t: &Transition) -> Result<(), Refusal> {
        let now = self.serving_now(&t.environment);
        if now != t.from.as_deref() {
            let detail = match now {
                Some(v) => format!("{} serves {v}: body.from must name it", t.environment),
                None => format!(
                    "nothing serves in {} yet: leave body.from out",
                    t.environment
                ),
            };
            return Err(Refusal::Gate(vec![missing(
                "from_mismatch",
                detail,
                vec![],
            )]));
        }
        Ok(())
    }

    fn check_promotion(&self, t: &Transition) -> Result<(), Refusal> {
        self.known_model(&t.to, "body.to")?;
        let mut report = self.gate(&t.to, &t.environment);
        if let Err(Refusal::Gate(m)) = self.check_from(t) {
            report.missing.extend(m);
        }
        if report.satisfied() {
            Ok(())
        } else {
            Err(Refusal::Gate(report.missing))
        }
    }

    fn check_rollback(&self, t: &Transition) -> Result<(), Refusal> {
        let model = self.known_model(&t.to, "body.to")?;
        let mut gaps = Vec::new();
        if let Err(Refusal::Gate(m)) = self.check_from(t) {
            gaps.extend(m);
        }
        if let Some(r) = &model.retired {
            gaps.push(missing(
                "retired",
                format!("{} was retired", t.to),
                vec![r.id.clone()],
            ));
        }
        let served = self
            .serving
            .get(&t.environment)
            .is_some_and(|c| c.iter().any(|c| c.to.as_deref() == Some(t.to.as_str())));
        if !served {
            gaps.push(missing(
                "never_served",
                format!(
                    "{} never served in {}: a rollback returns to an earlier version; promote new versions",
                    t.to, t.environment
                ),
                vec![],
            ));
        }
        if gaps.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Gate(gaps))
        }
    }

    /// Advances the state by one appended governance entry (client or custody written).
    /// Entries must be applied in log order, each exactly once.
    pub fn apply(&mut self, event: Option<&Event>, meta: EntryMeta) {
        self.size = self.size.max(meta.index + 1);
        let Some(event) = event else { return };
        match event {
            Event::DatasetVersion(d) => {
                self.datasets.entry(d.digest.clone()).or_insert(meta);
            }
            Event::TrainingRun(r) => {
                self.runs.entry(r.run_id.clone()).or_insert(RunInfo {
                    trainer: meta.actor.clone(),
                    entry: meta,
                });
            }
            Event::ModelVersion(m) => {
                self.models
                    .entry(m.version_hash.clone())
                    .or_insert(ModelInfo {
                        name: m.name.clone(),
                        run_id: m.run_id.clone(),
                        entry: meta,
                        card_version: 0,
                        retired: None,
                    });
            }
            Event::ModelCard(c) => {
                if let Some(m) = self.models.get_mut(&c.version_hash) {
                    m.card_version = m.card_version.max(c.card_version);
                }
            }
            Event::ApproverKeyRegistered(k) => {
                if let Ok(key) = PublicKey::from_pem(&k.public_key_pem) {
                    self.keys.entry(key.fingerprint()).or_insert(KeyInfo {
                        approver: k.approver.clone(),
                        revoked: false,
                        key,
                        entry: meta,
                    });
                }
            }
            Event::ApproverKeyRevoked {
                key_fingerprint, ..
            } => {
                if let Some(k) = self.keys.get_mut(key_fingerprint) {
                    k.revoked = true;
                }
            }
            Event::Approval(a) => {
                self.approvals
                    .entry((a.version_hash.clone(), a.target.clone()))
                    .or_default()
                    .insert(
                        a.approver.clone(),
                        StandingApproval {
                            approve: a.approve,
                            criteria: a.criteria.clone(),
                            key_fingerprint: a.key_fingerprint.clone(),
                            entry: meta,
                        },
                    );
            }
            Event::Policy(p) => {
                self.policy = p.clone();
                self.policy_entry = Some(meta);
            }
            Event::Retention(r) => {
                self.retention = r.clone();
                self.retention_entry = Some(meta);
            }
            Event::Promotion(t) | Event::Rollback(t) => {
                let kind = if matches!(event, Event::Promotion(_)) {
                    "promotion"
                } else {
                    "rollback"
                };
                self.push_change(
                    &t.environment,
                    kind,
                    t.from.clone(),
                    Some(t.to.clone()),
                    meta,
                );
            }
            Event::Deployment(d) => {
                self.deployments
                    .entry(d.deployment_id.clone())
                    .or_insert(DeploymentInfo {
                        environment: d.environment.clone(),
                        version_hash: d.version_hash.clone(),
                        entry: meta,
                    });
            }
            Event::Retirement { version_hash } => {
                if let Some(m) = self.models.get_mut(version_hash) {
                    m.retired = Some(meta.clone());
                }
                let envs: Vec<String> = self
                    .serving
                    .iter()
                    .filter(|(_, c)| {
                        c.last().and_then(|c| c.to.as_deref()) == Some(version_hash.as_str())
                    })
                    .map(|(e, _)| e.clone())
                    .collect();
                for env in envs {
                    self.push_change(
                        &env,
                        "retirement",
                        Some(version_hash.clone()),
                        None,
                        meta.clone(),
                    );
                }
            }
            Event::Incident(i) => {
                self.incidents
                    .insert(i.incident_id.clone(), i.status.clone());
            }
            Event::Inference(_) | Event::Recorded => {}
        }
    }

    fn push_change(
        &mut self,
        env: &str,
        kind: &str,
        from: Option<String>,
        to: Option<String>,
        meta: EntryMeta,
    ) {
        self.serving
            .entry(env.to_owned())
            .or_default()
            .push(ServingChange {
                kind: kind.to_owned(),
                from,
                to,
                entry: meta,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Inference, ModelVersion, TrainingRun};

    fn meta(index: u64, micros: i64, actor: &str) -> EntryMeta {
        EntryMeta {
            id: format!("e{index}"),
            index,
            time_micros: micros,
            actor: actor.into(),
        }
    }

    fn hash(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn serving_state() -> GovernanceState {
        let mut s = GovernanceState::default();
        s.apply(
            Some(&Event::TrainingRun(TrainingRun {
                run_id: "r".into(),
                datasets: vec![],
                status: "succeeded".into(),
            })),
            meta(0, 0, "usr-t"),
        );
        for (i, h) in [hash(1), hash(2)].into_iter().enumerate() {
            s.apply(
                Some(&Event::ModelVersion(ModelVersion {
                    version_hash: h,
                    name: "m".into(),
                    run_id: "r".into(),
                    files: vec![],
                })),
                meta(1 + i as u64, 0, "svc"),
            );
        }
        let t = |from: Option<String>, to: String| Transition {
            from,
            to,
            environment: "prod".into(),
            authoriser: "usr-l".into(),
        };
        s.apply(
            Some(&Event::Promotion(t(None, hash(1)))),
            meta(3, 10_000_000, "usr-l"),
        );
        s.apply(
            Some(&Event::Promotion(t(Some(hash(1)), hash(2)))),
            meta(4, 20_000_000, "usr-l"),
        );
        s.apply(
            Some(&Event::Rollback(t(Some(hash(2)), hash(1)))),
            meta(5, 30_000_000, "usr-l"),
        );
        s.apply(
            Some(&Event::Deployment(crate::events::Deployment {
                deployment_id: "dep".into(),
                environment: "prod".into(),
                endpoint: "e".into(),
                config_digest: hash(9),
                version_hash: hash(1),
            })),
            meta(6, 10_500_000, "svc"),
        );
        s
    }

    #[test]
    fn serving_is_read_off_the_timeline() {
        let s = serving_state();
        assert_eq!(s.serving_at("prod", 5_000_000), None);
        assert_eq!(s.serving_at("prod", 10_000_000), Some(hash(1).as_str()));
        assert_eq!(s.serving_at("prod", 25_000_000), Some(hash(2).as_str()));
        assert_eq!(s.serving_now("prod"), Some(hash(1).as_str()));
        assert_eq!(s.history(&hash(2)).len(), 2);
    }

    #[test]
    fn inferences_near_a_change_are_accepted_within_the_clock_skew_only() {
        let s = serving_state();
        let inf = |h: u8, at: i64| Inference {
            request_id: "q".into(),
            version_hash: hash(h),
            deployment_id: "dep".into(),
            requested_micros: at,
        };
        assert_eq!(s.check_inference(&inf(2, 25_000_000)).unwrap(), None);
        // 1 s after the rollback, still inside the default 2 s skew.
        assert_eq!(s.check_inference(&inf(2, 31_000_000)).unwrap(), None);
        let m = s
            .check_inference(&inf(2, 33_000_000))
            .unwrap()
            .expect("mismatch");
        assert_eq!(m.expected, Some(hash(1)));
        assert_eq!(m.change.as_deref(), Some("e5"));
        assert!(s.check_inference(&inf(3, 25_000_000)).unwrap().is_some());
        let unknown = Inference {
            deployment_id: "nope".into(),
            ..inf(1, 0)
        };
        assert!(matches!(
            s.check_inference(&unknown),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn without_a_policy_one_approval_by_someone_other_than_the_trainer_is_needed() {
        let s = serving_state();
        let r = s.gate(&hash(2), "prod");
        assert!(!r.satisfied());
        assert_eq!(r.missing[0].code, "approvals");
        assert_eq!(r.rule, GateRule::default());
        assert_eq!(s.gate(&hash(7), "prod").missing[0].code, "unknown_model");
    }
}
