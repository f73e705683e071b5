//! Rate limits: a token bucket per key (a principal's token id once authenticated, the source
//! address before), so one caller cannot starve the others, and token guessing is slowed to a
//! crawl. Buckets that have refilled are dropped, so memory stays bounded by active callers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A rate: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period.
    pub burst: f64,
}

/// Keyed token buckets.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Above this many keys, full buckets are swept on the next call.
const SWEEP_AT: usize = 10_000;

impl Limiter {
    /// A limiter allowing `rate` per key.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's worth for `key` at `now`: `Ok(())`, or `Err(seconds)` to wait.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Rate { per_second, burst } = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_AT {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_sustained_rate() {
        let l = Limiter::new(Rate {
            per_second: 2.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("a", t0), Ok(()));
        }
        assert_eq!(l.take("a", t0), Err(1));
        assert_eq!(l.take("b", t0), Ok(()), "keys are independent");
        assert_eq!(l.take("a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.take("a", t0 + Duration::from_millis(500)).is_err());
        for _ in 0..3 {
            assert_eq!(
                l.take("a", t0 + Duration::from_secs(60)),
                Ok(()),
                "refills to the burst"
            );
        }
        assert!(
            l.take("a", t0 + Duration::from_secs(60)).is_err(),
            "never above the burst"
        );
    }

    #[test]
    fn idle_keys_are_swept() {
        let l = Limiter::new(Rate {
            per_second: 1000.0,
            burst: 1.0,
        });
        let t0 = Instant::now();
        for i in 0..=SWEEP_AT {
            l.take(&i.to_string(), t0).unwrap();
        }
        l.take("late", t0 + Duration::from_secs(5)).unwrap();
        assert!(
            l.buckets.lock().unwrap().len() < 10,
            "refilled buckets were kept"
        );
    }
}
