//! The `--rate` of commands that write: a token bucket whose burst is a
//! twentieth of a second's worth, so waits are few and long enough for
//! the timer (a burst of one at high rates would wait ~1 ms per record).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A limiter for `per_second` records per second.
pub fn limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second / 20).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}
