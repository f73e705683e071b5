//! Audit answers with their proofs. Each answer collects the entries it rests on, then proves
//! all of them against one signed checkpoint per log, read after the governance state was
//! consulted, so every entry the state named is inside the checkpoint's tree.

use std::collections::{BTreeMap, HashSet};

use base64ct::{Base64, Encoding};
use custody_api::evidence::{
    AdmitAnswer, ApproverKeyView, EvidenceLink, EvidencePack, GateGap, GateRuleView, HistoryAnswer,
    LogCheckpoint, Proven, ProvenEntry, ServedAnswer, ServingChangeView, TraceAnswer,
};
use custody_core::envelope::{LogName, Timestamp, ValidationError};
use custody_evidence::events::{kinds, types};
use custody_evidence::{GateReport, GovernanceState, Missing};
use custody_ledger::{EntryView, LedgerError};
use custody_store::{EntryFilter, LedgerReader, LogKey};
use serde_json::Value;
use uuid::Uuid;

use crate::{Backend, Governance, GovernanceError};

/// Where a trace starts.
#[derive(Debug, Clone)]
pub enum TraceStart {
    /// An entry by log and index.
    Entry(LogName, u64),
    /// An entry by id, in either log.
    Id(Uuid),
    /// An inference by request id.
    Request(String),
    /// A registered object by its natural id: dataset digest, run id, version hash,
    /// deployment id.
    Subject(String),
}

/// Which way a trace walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceDirection {
    /// To what the start rests on: inference -> deployment -> model -> approvals, card -> run
    /// -> datasets.
    Backward,
    /// To what rests on the start: dataset -> runs -> models -> deployments, inferences.
    Forward,
}

/// What an evidence pack is about.
#[derive(Debug, Clone)]
pub enum PackScope {
    /// A model version and everything behind and about it.
    Model(String),
    /// One inference and its chain.
    Inference(TraceStart),
    /// Every governance entry and inference recorded in `[since, until)`.
    Window(i64, i64),
}

/// Most entries one answer carries.
const MAX_ANSWER_ENTRIES: usize = 5_000;

/// Entries gathered for an answer, in the order found.
#[derive(Default)]
struct Gathered {
    order: Vec<(LogName, u64)>,
    seen: HashSet<(LogName, u64)>,
    views: BTreeMap<(LogName, u64), EntryView>,
    links: Vec<EvidenceLink>,
    truncated: bool,
}

impl Gathered {
    fn add(&mut self, log: LogName, view: EntryView) -> bool {
        let k = (log, view.index);
        if self.seen.contains(&k) {
            return false;
        }
        if self.order.len() >= MAX_ANSWER_ENTRIES {
            self.truncated = true;
            return false;
        }
        self.seen.insert(k);
        self.order.push(k);
        self.views.insert(k, view);
        true
    }

    fn link(&mut self, from: &str, to: &str, rel: &str) {
        let l = EvidenceLink {
            from: from.to_owned(),
            to: to.to_owned(),
            rel: rel.to_owned(),
        };
        if !self.links.contains(&l) {
            self.links.push(l);
        }
    }
}

fn id_of(v: &EntryView) -> String {
    v.envelope
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn type_of(v: &EntryView) -> &str {
    v.envelope
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn subject_id(v: &EntryView) -> String {
    v.envelope
        .pointer("/subject/id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn related(v: &EntryView) -> Vec<(String, String, String)> {
    v.envelope
        .get("related")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|r| {
                    let s = |k: &str| {
                        r.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (s("kind"), s("id"), s("rel"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn role(entry_type: &str) -> String {
    entry_type.split('.').next().unwrap_or_default().to_owned()
}

fn gap(m: Missing) -> GateGap {
    GateGap {
        code: m.code,
        detail: m.detail,
        entries: m.entries,
    }
}

fn rule_view(r: &GateReport) -> GateRuleView {
    GateRuleView {
        min_approvals: r.rule.min_approvals,
        required_criteria: r.rule.required_criteria.clone(),
        separation_of_duties: r.rule.separation_of_duties,
    }
}

pub(crate) fn rfc3339(micros: i64) -> String {
    Timestamp::from_unix_micros(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl<S: Backend> Governance<S> {
    fn key(tenant: &custody_core::envelope::TenantName, log: LogName) -> LogKey {
        LogKey {
            tenant: tenant.clone(),
            log,
        }
    }

    async fn find(
        &self,
        tenant: &custody_core::envelope::TenantName,
        log: LogName,
        filter: EntryFilter,
    ) -> Result<(Vec<EntryView>, bool), GovernanceError> {
        let limit = filter.limit;
        let page = self.ledger.list(&Self::key(tenant, log), filter).await?;
        let full = page.entries.len() >= limit as usize;
        Ok((page.entries, full))
    }

    async fn view(
        &self,
        tenant: &custody_core::envelope::TenantName,
        log: LogName,
        index: u64,
    ) -> Result<EntryView, GovernanceError> {
        Ok(self.ledger.entry(&Self::key(tenant, log), index).await?)
    }

    /// Indexes of entries by id in one log.
    async fn indexes(
        &self,
        tenant: &custody_core::envelope::TenantName,
        log: LogName,
        ids: &[String],
    ) -> Result<Vec<u64>, GovernanceError> {
        let uuids: Vec<Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .ledger
            .reader()
            .existing_ids(&Self::key(tenant, log), &uuids)
            .await
            .map_err(LedgerError::from)?;
        Ok(found.into_iter().map(|e| e.index).collect())
    }

    /// Proves every gathered entry against the latest checkpoint of its log.
    async fn prove(
        &self,
        tenant: &custody_core::envelope::TenantName,
        g: &Gathered,
        with_payloads: bool,
    ) -> Result<Proven, GovernanceError> {
        let mut checkpoints = Vec::new();
        let mut sizes = BTreeMap::new();
        for log in [LogName::Governance, LogName::Inference] {
            if g.order.iter().any(|(l, _)| *l == log) {
                let key = Self::key(tenant, log);
                let cp = self.ledger.checkpoint(&key).await?;
                sizes.insert(log, cp.size);
                checkpoints.push(LogCheckpoint {
                    log: log.to_string(),
                    size: cp.size,
                    checkpoint: cp.note,
                    verifier_key: self.ledger.verifier_key(&key).await?,
                });
            }
        }
        let mut entries = Vec::with_capacity(g.order.len());
        for k @ (log, index) in &g.order {
            let view = &g.views[k];
            let proof = self
                .ledger
                .inclusion_proof(&Self::key(tenant, *log), *index, Some(sizes[log]))
                .await?;
            let (payload, salt) = match (&view.payload, with_payloads) {
                (Some((p, s)), true) => (Some(p.clone()), Some(Base64::encode_string(&s.0))),
                _ => (None, None),
            };
            entries.push(ProvenEntry {
                log: log.to_string(),
                index: *index,
                role: role(type_of(view)),
                envelope: view.envelope.clone(),
                leaf_hash: view.leaf_hash.to_hex(),
                proof: proof
                    .hashes
                    .iter()
                    .map(|h| Base64::encode_string(h.as_bytes()))
                    .collect(),
                payload,
                salt,
            });
        }
        Ok(Proven {
            entries,
            checkpoints,
        })
    }

    /// The registering entries of an object named by kind and id.
    async fn resolve(
        &self,
        tenant: &custody_core::envelope::TenantName,
        state: &GovernanceState,
        kind: &str,
        id: &str,
    ) -> Result<Vec<(LogName, u64)>, GovernanceError> {
        let gov = |i: u64| vec![(LogName::Governance, i)];
        Ok(match kind {
            kinds::DATASET_VERSION => state.dataset(id).map(|m| gov(m.index)).unwrap_or_default(),
            kinds::TRAINING_RUN => state.run(id).map(|(m, _)| gov(m.index)).unwrap_or_default(),
            kinds::MODEL_VERSION => state
                .model(id)
                .map(|m| gov(m.entry.index))
                .unwrap_or_default(),
            kinds::DEPLOYMENT => state
                .deployment(id)
                .map(|d| gov(d.entry.index))
                .unwrap_or_default(),
            kinds::INCIDENT => {
                let (found, _) = self
                    .find(
                        tenant,
                        LogName::Governance,
                        filter_subject(id, Some(types::INCIDENT_OPENED), 1),
                    )
                    .await?;
                found
                    .iter()
                    .map(|v| (LogName::Governance, v.index))
                    .collect()
            }
            kinds::INFERENCE => {
                let (found, _) = self
                    .find(
                        tenant,
                        LogName::Inference,
                        filter_subject(id, Some(types::INFERENCE), 1),
                    )
                    .await?;
                found
                    .iter()
                    .map(|v| (LogName::Inference, v.index))
                    .collect()
            }
            kinds::ENTRY => {
                let mut out = Vec::new();
                for log in [LogName::Governance, LogName::Inference] {
                    for i in self.indexes(tenant, log, &[id.to_owned()]).await? {
                        out.push((log, i));
                    }
                }
                out
            }
            kinds::APPROVER => state
                .registered_keys()
                .filter(|(_, a, _, _)| *a == id)
                .map(|(_, _, _, m)| (LogName::Governance, m.index))
                .collect(),
            _ => Vec::new(),
        })
    }

    async fn start(
        &self,
        tenant: &custody_core::envelope::TenantName,
        state: &GovernanceState,
        start: &TraceStart,
    ) -> Result<(LogName, u64), GovernanceError> {
        let found = match start {
            TraceStart::Entry(log, index) => Some((*log, *index)),
            TraceStart::Id(id) => self
                .resolve(tenant, state, kinds::ENTRY, &id.to_string())
                .await?
                .into_iter()
                .next(),
            TraceStart::Request(r) => self
                .resolve(tenant, state, kinds::INFERENCE, r)
                .await?
                .into_iter()
                .next(),
            TraceStart::Subject(s) => {
                let mut found = None;
                for kind in [
                    kinds::MODEL_VERSION,
                    kinds::DATASET_VERSION,
                    kinds::TRAINING_RUN,
                    kinds::DEPLOYMENT,
                ] {
                    if let Some(f) = self
                        .resolve(tenant, state, kind, s)
                        .await?
                        .into_iter()
                        .next()
                    {
                        found = Some(f);
                        break;
                    }
                }
                found
            }
        };
        found.ok_or_else(|| {
            GovernanceError::NotFound(match start {
                TraceStart::Entry(log, i) => format!("entry {i} of the {log} log does not exist"),
                TraceStart::Id(id) => format!("no entry has id {id}"),
                TraceStart::Request(r) => format!("no inference has request id {r}"),
                TraceStart::Subject(s) => format!(
                    "{s} is not a registered model version, dataset version, training run or deployment"
                ),
            })
        })
    }

    /// Everything recorded about a model version in the governance log: its registration,
    /// cards, approvals (with the keys that signed them and the policy in force), serving
    /// changes, refusals, deployments and security events.
    async fn gather_model(
        &self,
        tenant: &custody_core::envelope::TenantName,
        state: &GovernanceState,
        hash: &str,
        g: &mut Gathered,
    ) -> Result<(), GovernanceError> {
        let Some(model) = state.model(hash) else {
            return Ok(());
        };
        let reg = self
            .view(tenant, LogName::Governance, model.entry.index)
            .await?;
        let model_id = id_of(&reg);
        g.add(LogName::Governance, reg);
        let mut about = Vec::new();
        for filter in [filter_subject(hash, None, 1000), filter_related(hash, 1000)] {
            let (found, full) = self.find(tenant, LogName::Governance, filter).await?;
            g.truncated |= full;
            about.extend(found);
        }
        let mut approvers = HashSet::new();
        for v in about {
            let t = type_of(&v).to_owned();
            if t == types::MODEL_VERSION || t == types::SERVING_MISMATCH {
                continue;
            }
            if t == types::APPROVAL
                && let Some(fp) = v
                    .envelope
                    .pointer("/body/key_fingerprint")
                    .and_then(Value::as_str)
            {
                approvers.insert(fp.to_owned());
            }
            let vid = id_of(&v);
            g.link(&vid, &model_id, "about");
            g.add(LogName::Governance, v);
        }
        for (fp, _, _, meta) in state.registered_keys() {
            if approvers.contains(fp) {
                let v = self.view(tenant, LogName::Governance, meta.index).await?;
                g.add(LogName::Governance, v);
            }
        }
        if !approvers.is_empty()
            && let Some(p) = state.policy().1
        {
            let v = self.view(tenant, LogName::Governance, p.index).await?;
            g.add(LogName::Governance, v);
        }
        Ok(())
    }

    /// Walks the evidence chain from one entry, backward to what it rests on or forward to
    /// what rests on it, and proves every entry met.
    pub async fn trace(
        &self,
        tenant: &custody_core::envelope::TenantName,
        start: &TraceStart,
        direction: TraceDirection,
        limit: u32,
    ) -> Result<TraceAnswer, GovernanceError> {
        let g = self.gather_trace(tenant, start, direction, limit).await?;
        let start_id = g
            .order
            .first()
            .map(|k| id_of(&g.views[k]))
            .unwrap_or_default();
        let proven = self.prove(tenant, &g, false).await?;
        Ok(TraceAnswer {
            start: start_id,
            direction: match direction {
                TraceDirection::Backward => "backward",
                TraceDirection::Forward => "forward",
            }
            .into(),
            links: g.links,
            truncated: g.truncated,
            proven,
        })
    }

    async fn gather_trace(
        &self,
        tenant: &custody_core::envelope::TenantName,
        start: &TraceStart,
        direction: TraceDirection,
        limit: u32,
    ) -> Result<Gathered, GovernanceError> {
        let tg = self.tenant(tenant).await?;
        let state = tg.state.read().await.clone();
        let (log, index) = self.start(tenant, &state, start).await?;
        let first = self.view(tenant, log, index).await?;
        let mut g = Gathered::default();
        match direction {
            TraceDirection::Backward => {
                let mut queue = vec![(log, first.index)];
                g.add(log, first);
                while let Some(k) = queue.pop() {
                    let (from_id, links, entry_type, subject) = {
                        let v = &g.views[&k];
                        (id_of(v), related(v), type_of(v).to_owned(), subject_id(v))
                    };
                    if entry_type == types::MODEL_VERSION {
                        self.gather_model(tenant, &state, &subject, &mut g).await?;
                    }
                    for (kind, id, rel) in links {
                        for (tlog, tindex) in self.resolve(tenant, &state, &kind, &id).await? {
                            let v = self.view(tenant, tlog, tindex).await?;
                            g.link(&from_id, &id_of(&v), &rel);
                            let is_model = type_of(&v) == types::MODEL_VERSION;
                            if g.add(tlog, v) || is_model {
                                queue.push((tlog, tindex));
                            }
                        }
                    }
                }
            }
            TraceDirection::Forward => {
                let mut frontier = vec![(subject_id(&first), id_of(&first))];
                g.add(log, first);
                let mut inference_budget = limit.max(1);
                for _depth in 0..8 {
                    let mut next = Vec::new();
                    for (subject, node_id) in &frontier {
                        for l in [LogName::Governance, LogName::Inference] {
                            let cap = if l == LogName::Inference {
                                inference_budget
                            } else {
                                1000
                            };
                            if cap == 0 {
                                g.truncated = true;
                                continue;
                            }
                            let (found, full) =
                                self.find(tenant, l, filter_related(subject, cap)).await?;
                            g.truncated |= full;
                            for v in found {
                                let rel = related(&v)
                                    .into_iter()
                                    .find(|(_, id, _)| id == subject)
                                    .map(|(_, _, r)| r)
                                    .unwrap_or_default();
                                let vid = id_of(&v);
                                let (sub, leaf) = (subject_id(&v), l == LogName::Inference);
                                g.link(&vid, node_id, &rel);
                                if g.add(l, v) {
                                    if leaf {
                                        inference_budget = inference_budget.saturating_sub(1);
                                    } else {
                                        next.push((sub, vid));
                                    }
                                }
                            }
                        }
                    }
                    if next.is_empty() {
                        break;
                    }
                    frontier = next;
                }
            }
        }
        Ok(g)
    }

    /// What served in `env` at `at_micros`, with the serving change in force, the model
    /// version and its deployments there.
    pub async fn served(
        &self,
        tenant: &custody_core::envelope::TenantName,
        env: &str,
        at_micros: i64,
    ) -> Result<ServedAnswer, GovernanceError> {
        let tg = self.tenant(tenant).await?;
        let state = tg.state.read().await.clone();
        let mut g = Gathered::default();
        let change = state.change_at(env, at_micros).cloned();
        let version = change.as_ref().and_then(|c| c.to.clone());
        if let Some(c) = &change {
            let v = self
                .view(tenant, LogName::Governance, c.entry.index)
                .await?;
            g.add(LogName::Governance, v);
        }
        let mut name = None;
        if let Some(h) = &version
            && let Some(m) = state.model(h)
        {
            name = Some(m.name.clone());
            let v = self
                .view(tenant, LogName::Governance, m.entry.index)
                .await?;
            g.add(LogName::Governance, v);
            let mut deps: Vec<_> = state
                .deployments()
                .filter(|(_, d)| {
                    d.environment == env && &d.version_hash == h && d.entry.time_micros <= at_micros
                })
                .map(|(_, d)| d.entry.index)
                .collect();
            deps.sort_unstable();
            for i in deps {
                let v = self.view(tenant, LogName::Governance, i).await?;
                g.add(LogName::Governance, v);
            }
        }
        let proven = self.prove(tenant, &g, false).await?;
        Ok(ServedAnswer {
            environment: env.to_owned(),
            at: rfc3339(at_micros),
            version_hash: version,
            model_name: name,
            change: change.map(|c| c.entry.id),
            proven,
        })
    }

    /// The full record of a model version: registration, cards, approvals, every promotion,
    /// rollback and retirement involving it, and its deployments.
    pub async fn history(
        &self,
        tenant: &custody_core::envelope::TenantName,
        hash: &str,
    ) -> Result<HistoryAnswer, GovernanceError> {
        let tg = self.tenant(tenant).await?;
        let state = tg.state.read().await.clone();
        let Some(model) = state.model(hash).cloned() else {
            return Err(GovernanceError::NotFound(format!(
                "{hash} is not a registered model version in this tenant"
            )));
        };
        let mut g = Gathered::default();
        self.gather_model(tenant, &state, hash, &mut g).await?;
        let changes = state
            .history(hash)
            .into_iter()
            .map(|(env, c)| ServingChangeView {
                environment: env.to_owned(),
                kind: c.kind.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                time: rfc3339(c.entry.time_micros),
                entry: c.entry.id.clone(),
            })
            .collect();
        let serving_in = state
            .environments()
            .filter(|(_, c)| c.last().and_then(|c| c.to.as_deref()) == Some(hash))
            .map(|(e, _)| e.to_owned())
            .collect();
        let proven = self.prove(tenant, &g, false).await?;
        Ok(HistoryAnswer {
            version_hash: hash.to_owned(),
            model_name: model.name,
            changes,
            serving_in,
            retired: model.retired.is_some(),
            proven,
        })
    }

    /// The serving gate: may `hash` serve in `env` now?
    pub async fn admit(
        &self,
        tenant: &custody_core::envelope::TenantName,
        hash: &str,
        env: &str,
    ) -> Result<AdmitAnswer, GovernanceError> {
        let tg = self.tenant(tenant).await?;
        let state = tg.state.read().await.clone();
        let report = state.admit(hash, env);
        let mut g = Gathered::default();
        let mut indexes = Vec::new();
        if let Some(m) = state.model(hash) {
            indexes.push(m.entry.index);
        }
        indexes.extend(
            self.indexes(tenant, LogName::Governance, &report.counted)
                .await?,
        );
        if let Some(c) = state.change_at(env, i64::MAX) {
            indexes.push(c.entry.index);
        }
        if let Some(p) = state.policy().1 {
            indexes.push(p.index);
        }
        for i in indexes {
            let v = self.view(tenant, LogName::Governance, i).await?;
            g.add(LogName::Governance, v);
        }
        let proven = self.prove(tenant, &g, false).await?;
        Ok(AdmitAnswer {
            version_hash: hash.to_owned(),
            environment: env.to_owned(),
            admitted: report.satisfied(),
            rule: rule_view(&report),
            approvers: report.approvers.clone(),
            missing: report.missing.into_iter().map(gap).collect(),
            proven,
        })
    }

    /// A self-contained evidence pack: entries with payloads, proofs, checkpoints, verifier
    /// keys and the approver keys that signed its approvals.
    pub async fn pack(
        &self,
        tenant: &custody_core::envelope::TenantName,
        scope: &PackScope,
        inference_limit: u32,
    ) -> Result<EvidencePack, GovernanceError> {
        let tg = self.tenant(tenant).await?;
        let state = tg.state.read().await.clone();
        let (g, scope_text) = match scope {
            PackScope::Model(hash) => {
                if state.model(hash).is_none() {
                    return Err(GovernanceError::NotFound(format!(
                        "{hash} is not a registered model version in this tenant"
                    )));
                }
                let g = self
                    .gather_trace(
                        tenant,
                        &TraceStart::Subject(hash.clone()),
                        TraceDirection::Backward,
                        0,
                    )
                    .await?;
                (g, format!("model {hash}"))
            }
            PackScope::Inference(start) => {
                let g = self
                    .gather_trace(tenant, start, TraceDirection::Backward, 0)
                    .await?;
                let first = g
                    .order
                    .first()
                    .map(|k| subject_id(&g.views[k]))
                    .unwrap_or_default();
                (g, format!("inference {first}"))
            }
            PackScope::Window(since, until) => {
                let mut g = Gathered::default();
                for (log, cap) in [
                    (LogName::Governance, MAX_ANSWER_ENTRIES as u32),
                    (LogName::Inference, inference_limit),
                ] {
                    if cap == 0 {
                        continue;
                    }
                    let filter = EntryFilter {
                        since_micros: Some(*since),
                        until_micros: Some(*until),
                        limit: cap,
                        ..EntryFilter::default()
                    };
                    let (found, full) = self.find(tenant, log, filter).await?;
                    g.truncated |= full;
                    for v in found {
                        g.add(log, v);
                    }
                }
                (
                    g,
                    format!("window {} .. {}", rfc3339(*since), rfc3339(*until)),
                )
            }
        };
        let fingerprints: HashSet<String> = g
            .views
            .values()
            .filter(|v| type_of(v) == types::APPROVAL)
            .filter_map(|v| {
                v.envelope
                    .pointer("/body/key_fingerprint")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let approver_keys = state
            .registered_keys()
            .filter(|(fp, ..)| fingerprints.contains(*fp))
            .map(|(fp, approver, key, meta)| ApproverKeyView {
                approver: approver.to_owned(),
                fingerprint: fp.to_owned(),
                public_key: key.to_pem(),
                entry: meta.id.clone(),
            })
            .collect();
        let proven = self.prove(tenant, &g, true).await?;
        Ok(EvidencePack {
            format: 1,
            tenant: tenant.to_string(),
            scope: scope_text,
            links: g.links,
            approver_keys,
            truncated: g.truncated,
            proven,
        })
    }
}

fn filter_subject(id: &str, entry_type: Option<&str>, limit: u32) -> EntryFilter {
    EntryFilter {
        subject_id: Some(id.to_owned()),
        entry_type: entry_type.map(str::to_owned),
        limit,
        ..EntryFilter::default()
    }
}

fn filter_related(id: &str, limit: u32) -> EntryFilter {
    EntryFilter {
        related_id: Some(id.to_owned()),
        limit,
        ..EntryFilter::default()
    }
}

/// Parses an RFC 3339 time into microseconds, for query parameters.
pub fn parse_time(field: &str, s: &str) -> Result<i64, ValidationError> {
    Timestamp::parse(s).map(|t| t.unix_micros()).ok_or_else(|| {
        ValidationError::one(field, "use an RFC 3339 time such as 2026-01-31T12:00:00Z")
    })
}
