//! The tenant's gate policy: how many distinct approvers each target needs, which criteria
//! must have passed, and whether the person who trained a model may approve it. The policy is
//! itself a ledger entry (`policy.updated`), so the rule that admitted a model is provable too.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fields::{Errors, Obj};

/// What one target (stage or environment) requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateRule {
    /// Distinct approvers whose approvals must stand.
    pub min_approvals: u32,
    /// Criteria that must have passed in at least one counted approval, and failed in none.
    pub required_criteria: Vec<String>,
    /// Approvers may not be the principal who ran the model's training run.
    pub separation_of_duties: bool,
}

impl Default for GateRule {
    /// Without a policy, one approval by someone other than the trainer: never zero, because
    /// a gate that admits anything is not a gate.
    fn default() -> Self {
        Self {
            min_approvals: 1,
            required_criteria: Vec::new(),
            separation_of_duties: true,
        }
    }
}

/// A tenant's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Rules per target.
    pub targets: BTreeMap<String, GateRule>,
    /// The rule for targets not listed.
    pub default: GateRule,
    /// How far an inference's request time may be from a serving change and still count as
    /// served by either side of it (clocks of serving hosts drift).
    pub clock_skew_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            targets: BTreeMap::new(),
            default: GateRule::default(),
            clock_skew_ms: 2_000,
        }
    }
}

impl Policy {
    /// The rule for a target.
    pub fn rule(&self, target: &str) -> &GateRule {
        self.targets.get(target).unwrap_or(&self.default)
    }

    pub(crate) fn read(b: &Obj<'_>, errors: &mut Errors) -> Option<Policy> {
        b.only(&["targets", "default", "clock_skew_ms"], errors);
        let mut policy = Policy::default();
        if let Some(targets) = b.object("targets", true, errors) {
            for name in targets.keys() {
                if let Some(rule) = targets
                    .object(&name, true, errors)
                    .and_then(|r| read_rule(&r, errors))
                {
                    policy.targets.insert(name, rule);
                }
            }
        }
        if let Some(d) = b.object("default", false, errors) {
            policy.default = read_rule(&d, errors)?;
        }
        if let Some(skew) = b.u64("clock_skew_ms", false, errors) {
            if skew > 600_000 {
                errors.push(b.at("clock_skew_ms"), "at most 600000 (10 minutes)");
            }
            policy.clock_skew_ms = skew;
        }
        Some(policy)
    }
}

fn read_rule(r: &Obj<'_>, errors: &mut Errors) -> Option<GateRule> {
    r.only(
        &["min_approvals", "required_criteria", "separation_of_duties"],
        errors,
    );
    let min = r.u64("min_approvals", true, errors);
    if min.is_some_and(|m| m > 16) {
        errors.push(r.at("min_approvals"), "at most 16");
    }
    let mut criteria = Vec::new();
    for (path, v) in r
        .array("required_criteria", false, errors)
        .unwrap_or_default()
    {
        match v.as_str() {
            Some(s) if crate::fields::is_token(s, 128) => criteria.push(s.to_owned()),
            _ => errors.push(
                path,
                "must be a criterion name (printable ASCII, no spaces)",
            ),
        }
    }
    let sod = r
        .boolean("separation_of_duties", false, errors)
        .unwrap_or(true);
    Some(GateRule {
        min_approvals: u32::try_from(min?).ok()?,
        required_criteria: criteria,
        separation_of_duties: sod,
    })
}
