//! The dead-letter cap, per scope: when too many of a scope's recent
//! records were dead-lettered (a bad deploy or a broken source, not one bad
//! record), the consumer loop stops dead-lettering that scope's records and
//! holds them instead, until the cap is reset (a valid flows file loaded, or
//! a restart). Other scopes go on.
//!
//! A scope is the source of a record: the part of its key before the first
//! `:` (intops writes every event, delivery request and outcome under
//! `<source>:<entity key>`). A record whose key has no such prefix (written
//! by another producer) belongs to scope [`UNKNOWN_SCOPE`]. Delivery runs
//! one loop per target, so there a scope is one source's records for one
//! target.
//!
//! The cap trips for a scope when either limit is crossed:
//! - more than `max_ratio` of its last `window` finished records were
//!   dead-lettered (checked once the window is full);
//! - `max_consecutive` of its records in a row were dead-lettered.
//!
//! While any scope is tripped the readiness check given to
//! [`DeadLetterCap::new`] is false, the gauge
//! `intops_dead_letter_cap_tripped{stage, scope}` is 1 and an error is
//! logged once.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use intops_runtime::Readiness;
use intops_runtime::metrics as m;
use tokio::sync::watch;

/// The scope of records whose key names no source.
pub const UNKNOWN_SCOPE: &str = "unknown";

/// The scope of records beyond [`MAX_SCOPES`] distinct scopes.
pub const OTHER_SCOPE: &str = "other";

/// Distinct scopes tracked (and labelled in metrics); more share
/// [`OTHER_SCOPE`]. Sources come from the flows file, so this is only
/// reached by keys other producers wrote.
pub const MAX_SCOPES: usize = 256;

/// The largest window accepted (one bit of memory per record per scope).
pub const MAX_WINDOW: usize = 100_000;

/// Bytes of held records kept in memory per consumer loop; beyond it a
/// lane waits for the cap to be reset instead of holding more (and so
/// stops taking records of any scope).
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// The cap's limits, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapSettings {
    window: usize,
    max_ratio: f64,
    max_consecutive: usize,
}

/// Which setting a validation message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapSetting {
    /// The window.
    Window,
    /// The ratio.
    Ratio,
    /// The consecutive-count limit.
    Consecutive,
}

impl CapSettings {
    /// Limits over the last `window` records (0: no ratio limit), more than
    /// `max_ratio` (0 to 1) of them dead-lettered, or `max_consecutive` in
    /// a row (0: no such limit). Every invalid value is reported.
    pub fn new(
        window: usize,
        max_ratio: f64,
        max_consecutive: usize,
    ) -> Result<Self, Vec<(CapSetting, String)>> {
        let mut errors = Vec::new();
        if window > MAX_WINDOW {
            errors.push((
                CapSetting::Window,
                format!("must be at most {MAX_WINDOW}, got {window}"),
            ));
        }
        if !(0.0..=1.0).contains(&max_ratio) {
            errors.push((
                CapSetting::Ratio,
                format!("must be a share between 0 and 1, got {max_ratio}"),
            ));
        } else if window > 0 && max_ratio >= 1.0 {
            errors.push((
                CapSetting::Ratio,
                "must be below 1 (more than all of the window can never fail); set the window to 0 to turn the ratio limit off".into(),
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                window,
                max_ratio,
                max_consecutive,
            })
        } else {
            Err(errors)
        }
    }

    /// [`CapSettings::new`] for a service whose flags are
    /// `<env_prefix>_WINDOW`, `_RATIO` and `_CONSECUTIVE`: the errors name
    /// them, for a clear start-up error.
    pub fn from_flags(
        window: usize,
        max_ratio: f64,
        max_consecutive: usize,
        env_prefix: &str,
    ) -> Result<Self, intops_runtime::ConfigError> {
        Self::new(window, max_ratio, max_consecutive).map_err(|errors| {
            intops_runtime::ConfigError(
                errors
                    .into_iter()
                    .map(|(setting, message)| {
                        let name = match setting {
                            CapSetting::Window => "WINDOW",
                            CapSetting::Ratio => "RATIO",
                            CapSetting::Consecutive => "CONSECUTIVE",
                        };
                        format!("{env_prefix}_{name}: {message}")
                    })
                    .collect(),
            )
        })
    }

    /// No cap: nothing is ever held.
    pub const fn disabled() -> Self {
        Self {
            window: 0,
            max_ratio: 0.0,
            max_consecutive: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.window > 0 || self.max_consecutive > 0
    }
}

/// One scope's recent results.
#[derive(Debug, Default)]
struct Scope {
    recent: VecDeque<bool>,
    failed: usize,
    consecutive: usize,
    tripped: bool,
}

impl Scope {
    /// Adds a finished record; true when this trips the scope.
    fn push(&mut self, dead_lettered: bool, s: &CapSettings) -> bool {
        if s.window > 0 {
            self.recent.push_back(dead_lettered);
            self.failed += usize::from(dead_lettered);
            while self.recent.len() > s.window {
                if self.recent.pop_front() == Some(true) {
                    self.failed -= 1;
                }
            }
        }
        self.consecutive = if dead_lettered {
            self.consecutive + 1
        } else {
            0
        };
        let over_ratio = s.window > 0
            && self.recent.len() == s.window
            && self.failed as f64 > s.max_ratio * s.window as f64;
        let over_run = s.max_consecutive > 0 && self.consecutive >= s.max_consecutive;
        if (over_ratio || over_run) && !self.tripped {
            self.tripped = true;
            return true;
        }
        false
    }
}

/// The cap of one consumer loop (one stage, or one target of delivery).
#[derive(Debug)]
pub struct DeadLetterCap {
    stage: &'static str,
    check: String,
    settings: CapSettings,
    readiness: Option<Readiness>,
    scopes: Mutex<HashMap<String, Scope>>,
    /// Bumped by every reset: lanes holding records take them up again.
    released: watch::Sender<u64>,
    held: AtomicUsize,
    held_bytes: AtomicUsize,
}

impl DeadLetterCap {
    /// A cap for `stage` reporting through readiness check `check`.
    pub fn new(
        stage: &'static str,
        check: impl Into<String>,
        settings: CapSettings,
        readiness: Readiness,
    ) -> Self {
        let check = check.into();
        readiness.set(&check, true);
        Self::build(stage, check, settings, Some(readiness))
    }

    /// A cap that never trips (tools and tests).
    pub fn disabled(stage: &'static str) -> Self {
        Self::build(stage, String::new(), CapSettings::disabled(), None)
    }

    fn build(
        stage: &'static str,
        check: String,
        settings: CapSettings,
        readiness: Option<Readiness>,
    ) -> Self {
        if stage == "transform" {
            metrics::gauge!(m::TRANSFORM_CAP_TRIPPED).set(0.0);
        }
        Self {
            stage,
            check,
            settings,
            readiness,
            scopes: Mutex::new(HashMap::new()),
            released: watch::Sender::new(0),
            held: AtomicUsize::new(0),
            held_bytes: AtomicUsize::new(0),
        }
    }

    /// The scope of a record with this key (see the module documentation).
    pub fn scope_of(&self, key: Option<&[u8]>) -> String {
        let name = scope_name(key);
        let Ok(scopes) = self.scopes.lock() else {
            return name;
        };
        if scopes.contains_key(&name) || scopes.len() < MAX_SCOPES {
            name
        } else {
            OTHER_SCOPE.to_string()
        }
    }

    /// Whether `scope`'s records are held.
    pub fn is_tripped(&self, scope: &str) -> bool {
        self.scopes
            .lock()
            .map(|s| s.get(scope).is_some_and(|s| s.tripped))
            .unwrap_or(false)
    }

    /// The scopes held now, sorted.
    pub fn tripped(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .scopes
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(_, s)| s.tripped)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Counts a finished record of `scope`; may trip the scope.
    pub(crate) fn record(&self, scope: &str, dead_lettered: bool) {
        if !self.settings.enabled() {
            return;
        }
        let Ok(mut scopes) = self.scopes.lock() else {
            return;
        };
        if !scopes.contains_key(scope) && !dead_lettered {
            // Nothing to remember of a scope that never failed.
            return;
        }
        let state = scopes.entry(scope.to_string()).or_default();
        if !state.push(dead_lettered, &self.settings) {
            return;
        }
        let (failed, consecutive) = (state.failed, state.consecutive);
        drop(scopes);
        if let Some(readiness) = &self.readiness {
            readiness.set(&self.check, false);
        }
        metrics::gauge!(m::DEAD_LETTER_CAP_TRIPPED, "stage" => self.stage, "scope" => scope.to_string())
            .set(1.0);
        if self.stage == "transform" {
            metrics::gauge!(m::TRANSFORM_CAP_TRIPPED).set(1.0);
        }
        tracing::error!(
            stage = self.stage,
            check = %self.check,
            scope,
            failed,
            consecutive,
            window = self.settings.window,
            max_ratio = self.settings.max_ratio,
            max_consecutive = self.settings.max_consecutive,
            "dead-letter cap tripped: this scope's records are held, not dead-lettered, until the cap is reset (transform: a valid flows file loaded; delivery: intops target resume) or the service restarts; other scopes go on"
        );
    }

    /// Clears every scope and lets held records be processed again.
    pub fn reset(&self) {
        let tripped = self.tripped();
        if let Ok(mut scopes) = self.scopes.lock() {
            scopes.clear();
        }
        for scope in &tripped {
            metrics::gauge!(m::DEAD_LETTER_CAP_TRIPPED, "stage" => self.stage, "scope" => scope.clone())
                .set(0.0);
        }
        if self.stage == "transform" {
            metrics::gauge!(m::TRANSFORM_CAP_TRIPPED).set(0.0);
        }
        if let Some(readiness) = &self.readiness {
            readiness.set(&self.check, true);
        }
        if !tripped.is_empty() {
            tracing::info!(stage = self.stage, scopes = ?tripped, "dead-letter cap reset, held records resume");
        }
        self.released.send_modify(|n| *n += 1);
    }

    /// Wakes lanes holding records when the cap is reset.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    /// Takes `bytes` of a held record into memory; false when over
    /// [`MAX_HELD_BYTES`] (the lane must wait instead).
    pub(crate) fn hold(&self, bytes: usize) -> bool {
        let before = self.held_bytes.fetch_add(bytes, Ordering::SeqCst);
        if before > 0 && before + bytes > MAX_HELD_BYTES {
            self.held_bytes.fetch_sub(bytes, Ordering::SeqCst);
            return false;
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        // Delivery has a cap per target: they add up.
        metrics::gauge!(m::DEAD_LETTER_CAP_HELD, "stage" => self.stage).increment(1.0);
        true
    }

    /// A held record was taken up again (or dropped at shutdown).
    pub(crate) fn unhold(&self, bytes: usize) {
        self.held_bytes.fetch_sub(bytes, Ordering::SeqCst);
        self.held.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!(m::DEAD_LETTER_CAP_HELD, "stage" => self.stage).decrement(1.0);
    }

    /// Records held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

/// The source named by a key `<source>:<rest>`, or [`UNKNOWN_SCOPE`].
fn scope_name(key: Option<&[u8]>) -> String {
    let key = key.unwrap_or_default();
    let Some(colon) = key.iter().position(|b| *b == b':') else {
        return UNKNOWN_SCOPE.into();
    };
    let head = &key[..colon];
    let valid = !head.is_empty()
        && head.len() <= 64
        && head
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
    if valid {
        String::from_utf8_lossy(head).into_owned()
    } else {
        UNKNOWN_SCOPE.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(window: usize, ratio: f64, consecutive: usize) -> (DeadLetterCap, Readiness) {
        let readiness = Readiness::default();
        let settings = CapSettings::new(window, ratio, consecutive).expect("valid");
        (
            DeadLetterCap::new("test", "dead_letter_cap", settings, readiness.clone()),
            readiness,
        )
    }

    #[test]
    fn trips_over_the_ratio_per_scope_and_resets() {
        let (cap, readiness) = cap(4, 0.5, 0);
        for f in [true, false, true] {
            cap.record("a", f);
        }
        assert!(!cap.is_tripped("a"), "window not full yet");
        cap.record("a", false);
        assert!(!cap.is_tripped("a"), "2 of 4 is not more than half");
        cap.record("a", true);
        assert!(!cap.is_tripped("a"), "still 2 of the last 4");
        for _ in 0..10 {
            cap.record("b", false);
        }
        cap.record("a", true);
        assert!(cap.is_tripped("a"), "3 of the last 4 failed");
        assert!(!cap.is_tripped("b"), "b's records are its own");
        assert_eq!(cap.tripped(), vec!["a".to_string()]);
        assert!(!readiness.is_ready());
        let mut released = cap.subscribe();
        cap.reset();
        assert!(released.has_changed().expect("open"));
        released.mark_unchanged();
        assert!(!cap.is_tripped("a"));
        assert!(readiness.is_ready());
    }

    #[test]
    fn trips_on_a_run_of_dead_letters_before_the_window_fills() {
        let (cap, _) = cap(100, 0.5, 5);
        for _ in 0..4 {
            cap.record("a", true);
        }
        cap.record("a", false);
        for _ in 0..4 {
            cap.record("a", true);
        }
        assert!(!cap.is_tripped("a"), "a success broke the run");
        cap.record("a", true);
        assert!(cap.is_tripped("a"), "five in a row");
    }

    #[test]
    fn zero_limits_disable_it() {
        let (cap, readiness) = cap(0, 0.0, 0);
        for _ in 0..100 {
            cap.record("a", true);
        }
        assert!(!cap.is_tripped("a"));
        assert!(readiness.is_ready());
        let cap = DeadLetterCap::disabled("test");
        for _ in 0..100 {
            cap.record("a", true);
        }
        assert!(!cap.is_tripped("a"));
    }

    #[test]
    fn invalid_settings_are_all_reported() {
        let errors = CapSettings::new(MAX_WINDOW + 1, 1.5, 3).expect_err("invalid");
        let which: Vec<CapSetting> = errors.iter().map(|(s, _)| *s).collect();
        assert_eq!(which, vec![CapSetting::Window, CapSetting::Ratio]);
        assert!(CapSettings::new(10, f64::NAN, 0).is_err());
        assert!(CapSettings::new(10, -0.1, 0).is_err());
        assert!(CapSettings::new(10, 1.0, 0).is_err(), "never trips");
        assert!(CapSettings::new(0, 1.0, 5).is_ok(), "ratio unused");
        assert!(CapSettings::new(100, 0.5, 50).is_ok());
        let e = CapSettings::from_flags(10, 2.0, 0, "INTOPS_TRANSFORM_DLQ_CAP").expect_err("bad");
        assert!(
            e.to_string()
                .contains("INTOPS_TRANSFORM_DLQ_CAP_RATIO: must be a share"),
            "{e}"
        );
    }

    #[test]
    fn the_scope_is_the_source_named_by_the_key() {
        let cap = DeadLetterCap::disabled("test");
        assert_eq!(cap.scope_of(Some(b"servicenow:abc:def")), "servicenow");
        assert_eq!(cap.scope_of(Some(b"no-colon")), UNKNOWN_SCOPE);
        assert_eq!(cap.scope_of(Some(b":x")), UNKNOWN_SCOPE);
        assert_eq!(cap.scope_of(Some("a b:x".as_bytes())), UNKNOWN_SCOPE);
        assert_eq!(cap.scope_of(None), UNKNOWN_SCOPE);
    }

    #[test]
    fn scopes_beyond_the_bound_share_one() {
        let (cap, _) = cap(0, 0.0, 1);
        for i in 0..MAX_SCOPES {
            cap.record(&format!("s{i}"), true);
        }
        assert_eq!(cap.scope_of(Some(b"s1:x")), "s1");
        assert_eq!(cap.scope_of(Some(b"new:x")), OTHER_SCOPE);
    }

    #[test]
    fn held_bytes_are_bounded() {
        let cap = DeadLetterCap::disabled("test");
        assert!(cap.hold(MAX_HELD_BYTES + 10), "one record always fits");
        assert!(!cap.hold(1));
        cap.unhold(MAX_HELD_BYTES + 10);
        assert!(cap.hold(1));
        assert_eq!(cap.held(), 1);
    }
}
