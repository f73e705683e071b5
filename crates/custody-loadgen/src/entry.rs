//! The benchmark entry: the JSON submitted to custody, and the canonical envelope bytes that
//! the plain SQLite and siglog baselines store in its place.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Characters of the random-ish `blob`: none needs escaping in JSON.
const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// SplitMix64: a fast, seedable generator, plenty for payload filler and proof indices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`); the modulo bias is irrelevant here.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// A number in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One of `items` (`items` not empty).
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }

    /// `len` characters from [`ALPHABET`].
    pub fn blob(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            let mut bits = self.next_u64();
            for _ in 0..10 {
                if s.len() == len {
                    break;
                }
                s.push(char::from(ALPHABET[(bits & 63) as usize]));
                bits >>= 6;
            }
        }
        s
    }
}

/// Principal id standing in for the writer in the baselines' envelopes: custody names the
/// token's principal, an id of this shape, as the actor of what it appends.
pub const BASELINE_ACTOR: &str = "p_0123456789abcdef0123";

/// The entry as submitted to custody: `{"type","subject","body":{"seq","blob"}}`, without
/// `actor`, which custody fills in from the token.
pub fn submission(seq: u64, blob: &str) -> String {
    format!(
        r#"{{"type":"x.bench.event","subject":{{"kind":"x_item","id":"item-{seq}"}},"body":{{"seq":{seq},"blob":"{blob}"}}}}"#
    )
}

/// The same entry as custody would seal it: the submitted fields plus `id`, `log`, `tenant`,
/// `time` and `v`, and the `actor` custody fills in from the token, keys sorted as RFC 8785
/// requires. These are the bytes the baselines store.
pub fn canonical_envelope(seq: u64, blob: &str, tenant: &str, log: &str) -> String {
    let id = uuid::Uuid::now_v7();
    let time = rfc3339_now();
    format!(
        r#"{{"actor":{{"id":"{BASELINE_ACTOR}","kind":"service"}},"body":{{"blob":"{blob}","seq":{seq}}},"id":"{id}","log":"{log}","subject":{{"id":"item-{seq}","kind":"x_item"}},"tenant":"{tenant}","time":"{time}","type":"x.bench.event","v":1}}"#
    )
}

/// RFC 9162 leaf hash `SHA-256(0x00 || data)`, the same work custody does per entry.
pub fn leaf_hash(data: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().to_vec()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, custody's envelope time format.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn entries_are_valid_json() {
        let mut rng = Rng::new(1);
        let blob = rng.blob(200);
        assert_eq!(blob.len(), 200);
        let s: serde_json::Value = serde_json::from_str(&submission(7, &blob)).unwrap();
        assert_eq!(s["body"]["seq"], 7);
        assert!(s.get("actor").is_none());
        let e: serde_json::Value =
            serde_json::from_str(&canonical_envelope(7, &blob, "bench", "governance")).unwrap();
        assert_eq!(e["subject"]["id"], "item-7");
        assert_eq!(e["actor"]["id"], BASELINE_ACTOR);
        assert_eq!(leaf_hash(b"").len(), 32);
    }
}
