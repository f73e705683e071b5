//! API tokens: `cst_<id>_<secret>`, 80 bits of public id and 256 bits of secret.
//!
//! The id is what the store is searched by, so the search never touches the secret; the
//! secret is checked by comparing its SHA-256 with the stored one in constant time. The
//! `cst_` prefix lets secret scanners recognise a leaked token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const PREFIX: &str = "cst_";
const ID_BYTES: usize = 10;
const SECRET_BYTES: usize = 32;

/// A bearer token. Its `Debug` shows only the public id.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    id: String,
    secret: Zeroizing<String>,
}

/// Why a string is not a custody token. Says nothing about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a custody API token: expected cst_<20 hex>_<64 hex>")]
pub struct TokenParseError;

impl ApiToken {
    /// A new token from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; ID_BYTES];
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(&mut id)?;
        getrandom::fill(secret.as_mut())?;
        Ok(Self {
            id: hex::encode(id),
            secret: Zeroizing::new(hex::encode(secret.as_ref())),
        })
    }

    /// Parses the presented form. Surrounding whitespace (a trailing newline in a file) is
    /// ignored.
    pub fn parse(s: &str) -> Result<Self, TokenParseError> {
        let rest = s.trim().strip_prefix(PREFIX).ok_or(TokenParseError)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenParseError)?;
        let hex_of = |v: &str, n: usize| {
            v.len() == 2 * n && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex_of(id, ID_BYTES) || !hex_of(secret, SECRET_BYTES) {
            return Err(TokenParseError);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    /// The public id: safe to log, stored in the clear, named in the ledger.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the secret part: what the store keeps.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret.as_bytes()).into()
    }

    /// Whether the secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        self.secret_hash().ct_eq(stored).into()
    }

    /// The full token, to show its owner once.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret.as_str())
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({PREFIX}{}_<redacted>)", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_and_matches_its_hash() {
        let t = ApiToken::generate().unwrap();
        let shown = t.expose();
        assert!(shown.starts_with("cst_") && shown.len() == 4 + 20 + 1 + 64);
        let back = ApiToken::parse(&format!("{shown}\n")).unwrap();
        assert_eq!(back, t);
        assert!(back.matches(&t.secret_hash()));
        let other = ApiToken::generate().unwrap();
        assert!(!other.matches(&t.secret_hash()));
        assert_ne!(other.id(), t.id());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let t = ApiToken::generate().unwrap();
        let secret = t.expose().rsplit('_').next().unwrap().to_owned();
        let d = format!("{t:?}");
        assert!(d.contains(t.id()) && !d.contains(&secret), "{d}");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = ApiToken::generate().unwrap().expose();
        for bad in [
            "",
            "cst_",
            "Bearer x",
            &good.replace("cst_", "tok_"),
            &good[..good.len() - 1],
            &good.to_uppercase(),
            &format!("{good}0"),
            &good.replacen('_', "-", 2),
        ] {
            assert_eq!(ApiToken::parse(bad), Err(TokenParseError), "{bad:?}");
        }
    }
}
