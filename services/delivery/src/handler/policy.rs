//! What next after one attempt: retry after a delay, pause the target and
//! probe, give up (dead letter) or done. A pure decision over the attempt's
//! answer, the record's progress and the target's settings: no I/O, no
//! clock (the driver passes `now`) and no randomness (the driver passes the
//! jittered backoff), so every branch is unit tested.
//!
//! The rules, in order:
//! - a pause status (401 by default) pauses the target and does not count
//!   as an attempt; the record probes every `probe_interval` until another
//!   answer, for at most `max_pause` (then it is dead-lettered, `paused`);
//! - any other answer after probing resumes the target;
//! - 2xx is delivered; a permanent answer gives up with its class;
//! - a retryable answer gives up (`exhausted`) at `max_attempts`;
//! - otherwise it is retried after the target's `Retry-After`, exactly as
//!   asked, or after the next backoff (at most `max_backoff`); but when
//!   that wait would end past `max_elapsed`, or a `Retry-After` asks for
//!   longer than `max_pause`, it gives up (`exhausted`) instead.

use std::time::{Duration, Instant};

use intops_flows::{Retry, StatusSet};

use crate::breaker::Verdict;
use crate::client::Attempt;

#[cfg(test)]
mod tests;

/// A status's hundreds, for the attempts metric's `status` label and the
/// `http_<n>xx` failure classes: one mapping for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusRange {
    /// 1xx.
    Informational,
    /// 2xx.
    Success,
    /// 3xx.
    Redirect,
    /// 4xx.
    Client,
    /// 5xx.
    Server,
    /// Outside 100..=599.
    Other,
}

impl StatusRange {
    /// The range of `status`.
    pub fn of(status: u16) -> Self {
        match status / 100 {
            1 => Self::Informational,
            2 => Self::Success,
            3 => Self::Redirect,
            4 => Self::Client,
            5 => Self::Server,
            _ => Self::Other,
        }
    }

    /// The attempts metric's `status` label of an attempt: its range, or
    /// `error` when no response came.
    pub fn label(status: Option<u16>) -> &'static str {
        match status.map(Self::of) {
            Some(Self::Informational) => "1xx",
            Some(Self::Success) => "2xx",
            Some(Self::Redirect) => "3xx",
            Some(Self::Client) => "4xx",
            Some(Self::Server) => "5xx",
            Some(Self::Other) => "other",
            None => "error",
        }
    }
}

/// Why a delivery request was dead-lettered: the dead letter's
/// `error_class` and the dead-letter metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// A permanent answer, by its status range (`http_4xx`, ...).
    Http(StatusRange),
    /// No response: the request could not be built, or would leave the
    /// target; nothing was sent.
    Request,
    /// Retryable failures until `max_attempts`, `max_elapsed`, or a
    /// `Retry-After` longer than `max_pause`.
    Exhausted,
    /// The record kept its target paused past `max_pause`.
    Paused,
}

impl FailureClass {
    /// The class of a permanent answer.
    pub fn permanent(status: Option<u16>) -> Self {
        status.map_or(Self::Request, |s| Self::Http(StatusRange::of(s)))
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http(StatusRange::Informational) => "http_1xx",
            Self::Http(StatusRange::Success) => "http_2xx",
            Self::Http(StatusRange::Redirect) => "http_3xx",
            Self::Http(StatusRange::Client) => "http_4xx",
            Self::Http(StatusRange::Server) => "http_5xx",
            Self::Http(StatusRange::Other) => "http_other",
            Self::Request => "request",
            Self::Exhausted => "exhausted",
            Self::Paused => "paused",
        }
    }

    /// Whether the dead letter says a later replay may succeed as is.
    pub fn retryable(self) -> bool {
        self == Self::Exhausted
    }
}

/// How the breaker counts an attempt: only retryable failures count
/// against the target.
pub fn verdict(attempt: &Attempt) -> Verdict {
    match attempt {
        Attempt::Retryable { .. } => Verdict::Failed,
        Attempt::Delivered { .. } | Attempt::Permanent { .. } => Verdict::Answered,
    }
}

/// A target's settings the policy reads.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts, backoff and time bound.
    pub retry: Retry,
    /// Statuses that pause the target.
    pub pause_statuses: StatusSet,
    /// How often a paused target is probed.
    pub probe_interval: Duration,
    /// Longest one record may keep the target paused, and longest
    /// `Retry-After` honoured.
    pub max_pause: Duration,
}

/// One record's progress through its attempts.
#[derive(Debug, Clone)]
pub struct Progress {
    attempts: u32,
    first: Instant,
    paused_since: Option<Instant>,
    probing: bool,
}

impl Progress {
    /// A record about to make its first attempt at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            attempts: 0,
            first: now,
            paused_since: None,
            probing: false,
        }
    }

    /// Attempts counted (probes of a paused target are not).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether this lane paused the target and probes it: its next attempt
    /// goes out without waiting for the gate.
    pub fn probing(&self) -> bool {
        self.probing
    }

    /// How long this record has kept its target paused, counted from its
    /// first pause-status answer; `None` if it never got one.
    pub fn paused_for(&self, now: Instant) -> Option<Duration> {
        self.paused_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// After a pause's wait: whether the target is still paused by a pause
    /// status (an operator's pause or resume ends this lane's probing).
    pub fn set_probing(&mut self, still_paused: bool) {
        self.probing = still_paused;
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this delay.
    Retry(Duration),
    /// Pause the target (it answered this pause status) and probe again
    /// with this record when the gate changes or within this wait.
    Pause {
        /// The pause status.
        status: u16,
        /// Longest wait before the next probe.
        probe_within: Duration,
    },
    /// Delivered: write the outcome.
    Done,
    /// Dead-letter the record with this class.
    GiveUp(FailureClass),
}

/// A decision: what next, and whether the target resumes (a probe got
/// another answer, or the record held it past `max_pause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What next.
    pub next: Next,
    /// Resume the target (as a probe: an operator's pause stays).
    pub resume_target: bool,
}

impl Policy {
    /// Decides what next after `attempt`, which ended at `now`; `backoff`
    /// yields the next jittered backoff, drawn only for a retry without
    /// `Retry-After`.
    pub fn decide(
        &self,
        progress: &mut Progress,
        attempt: &Attempt,
        now: Instant,
        backoff: &mut dyn Iterator<Item = Duration>,
    ) -> Decision {
        if let Some(status) = attempt.status()
            && self.pause_statuses.contains(status)
        {
            // Misconfiguration, not a bad record: keep it and probe with
            // it, but for max_pause at most, since one record's answer may
            // be about that record only.
            let held = now.saturating_duration_since(*progress.paused_since.get_or_insert(now));
            if held >= self.max_pause {
                progress.attempts = progress.attempts.max(1);
                return Decision {
                    next: Next::GiveUp(FailureClass::Paused),
                    resume_target: true,
                };
            }
            return Decision {
                next: Next::Pause {
                    status,
                    probe_within: self.probe_interval.min(self.max_pause - held),
                },
                resume_target: false,
            };
        }
        progress.attempts += 1;
        let resume_target = std::mem::take(&mut progress.probing);
        let next = match attempt {
            Attempt::Delivered { .. } => Next::Done,
            Attempt::Permanent { status, .. } => Next::GiveUp(FailureClass::permanent(*status)),
            Attempt::Retryable { retry_after, .. } => {
                self.retry(progress, *retry_after, now, backoff)
            }
        };
        Decision {
            next,
            resume_target,
        }
    }

    fn retry(
        &self,
        progress: &Progress,
        retry_after: Option<Duration>,
        now: Instant,
        backoff: &mut dyn Iterator<Item = Duration>,
    ) -> Next {
        let retry = self.retry;
        if progress.attempts >= retry.max_attempts {
            return Next::GiveUp(FailureClass::Exhausted);
        }
        let delay = match retry_after {
            // As the target asked, up to max_pause.
            Some(asked) if asked > self.max_pause => return Next::GiveUp(FailureClass::Exhausted),
            Some(asked) => asked,
            // `intops_kafka::backoff` keeps delays within max_backoff; the
            // cut here keeps the policy's promise for any iterator.
            None => backoff
                .next()
                .map_or(retry.max_backoff, |d| d.min(retry.max_backoff)),
        };
        let elapsed = now.saturating_duration_since(progress.first);
        if retry.max_elapsed.is_some_and(|max| elapsed + delay > max) {
            return Next::GiveUp(FailureClass::Exhausted);
        }
        Next::Retry(delay)
    }
}
