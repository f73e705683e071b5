//! How long payloads are kept. Envelopes are kept forever (they are the tree); payloads, which
//! may be personal, are erased when they outlive the retention period of their entry type.
//! The policy is itself a ledger entry (`retention.updated`), so the rule under which a
//! payload was erased is provable.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fields::{Errors, Obj};

/// Seven years: the default for evidence, the span most financial and AI regulations ask for.
pub const DEFAULT_RETENTION_DAYS: u32 = 7 * 365;

/// Longest retention that may be set: a hundred years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// A tenant's retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// Days a payload is kept when its type is not listed.
    pub default_days: u32,
    /// Days per entry type.
    pub types: BTreeMap<String, u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            default_days: DEFAULT_RETENTION_DAYS,
            types: BTreeMap::new(),
        }
    }
}

impl Retention {
    /// Days a payload of `entry_type` is kept.
    pub fn days(&self, entry_type: &str) -> u32 {
        self.types
            .get(entry_type)
            .copied()
            .unwrap_or(self.default_days)
    }

    pub(crate) fn read(b: &Obj<'_>, errors: &mut Errors) -> Option<Retention> {
        b.only(&["default_days", "types"], errors);
        let mut out = Retention::default();
        let days = |v: u64, at: String, errors: &mut Errors| -> Option<u32> {
            if v > u64::from(MAX_RETENTION_DAYS) {
                errors.push(at, format!("at most {MAX_RETENTION_DAYS} days"));
                None
            } else {
                Some(v as u32)
            }
        };
        if let Some(d) = b.u64("default_days", false, errors) {
            out.default_days = days(d, b.at("default_days"), errors)?;
        }
        if let Some(types) = b.object("types", false, errors) {
            for name in types.keys() {
                if custody_core::envelope::validate_entry_type(&name).is_err() {
                    errors.push(
                        types.at(&name),
                        "is not an entry type such as inference.recorded",
                    );
                    continue;
                }
                if let Some(d) = types.u64(&name, true, errors)
                    && let Some(d) = days(d, types.at(&name), errors)
                {
                    out.types.insert(name, d);
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_types_keep_the_default() {
        let r = Retention {
            default_days: 10,
            types: [("inference.recorded".to_string(), 0)].into(),
        };
        assert_eq!(r.days("inference.recorded"), 0);
        assert_eq!(r.days("access.read"), 10);
        assert_eq!(Retention::default().days("x"), 2555);
    }
}
