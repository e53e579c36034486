//! Every branch of the policy, with made-up instants and a fixed backoff:
//! no broker, no target, no sleeping.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn policy() -> Policy {
    Policy {
        retry: Retry {
            max_attempts: 4,
            initial_backoff: 100 * MS,
            max_backoff: 500 * MS,
            max_elapsed: None,
        },
        pause_statuses: StatusSet(vec![(401, 401)]),
        probe_interval: 1000 * MS,
        max_pause: 10_000 * MS,
    }
}

fn delivered() -> Attempt {
    Attempt::Delivered {
        status: 201,
        answer: None,
    }
}

fn retryable(status: Option<u16>, retry_after: Option<Duration>) -> Attempt {
    Attempt::Retryable {
        status,
        reason: "target answered".into(),
        retry_after,
        excerpt: None,
    }
}

fn permanent(status: Option<u16>) -> Attempt {
    Attempt::Permanent {
        status,
        reason: "target answered".into(),
        excerpt: None,
    }
}

/// A record's attempts, each ending at `at` after the first.
struct Run {
    policy: Policy,
    progress: Progress,
    start: Instant,
    backoff: std::vec::IntoIter<Duration>,
}

impl Run {
    fn new(policy: Policy) -> Self {
        let start = Instant::now();
        Self {
            policy,
            progress: Progress::new(start),
            start,
            backoff: vec![100 * MS, 200 * MS, 900 * MS].into_iter(),
        }
    }

    fn at(&mut self, at: Duration, attempt: &Attempt) -> Decision {
        self.policy.decide(
            &mut self.progress,
            attempt,
            self.start + at,
            &mut self.backoff,
        )
    }

    fn next(&mut self, at: Duration, attempt: &Attempt) -> Next {
        self.at(at, attempt).next
    }
}

#[test]
fn a_2xx_is_done_after_one_attempt() {
    let mut run = Run::new(policy());
    assert_eq!(
        run.at(Duration::ZERO, &delivered()),
        Decision {
            next: Next::Done,
            resume_target: false
        }
    );
    assert_eq!(run.progress.attempts(), 1);
}

#[test]
fn a_permanent_answer_gives_up_with_its_class() {
    for (status, class) in [
        (Some(422), "http_4xx"),
        (Some(301), "http_3xx"),
        (Some(500), "http_5xx"),
        (None, "request"),
    ] {
        let mut run = Run::new(policy());
        let Next::GiveUp(got) = run.next(Duration::ZERO, &permanent(status)) else {
            panic!("{status:?} is final");
        };
        assert_eq!(got.as_str(), class);
        assert!(!got.retryable());
        assert_eq!(run.progress.attempts(), 1);
    }
}

#[test]
fn retryable_failures_back_off_within_max_backoff_until_max_attempts() {
    let mut run = Run::new(policy());
    let failed = retryable(Some(503), None);
    assert_eq!(run.next(Duration::ZERO, &failed), Next::Retry(100 * MS));
    assert_eq!(run.next(100 * MS, &failed), Next::Retry(200 * MS));
    // The jittered 900 ms is cut to max_backoff.
    assert_eq!(run.next(300 * MS, &failed), Next::Retry(500 * MS));
    // The fourth attempt is the last (max_attempts = 4).
    assert_eq!(
        run.next(800 * MS, &failed),
        Next::GiveUp(FailureClass::Exhausted)
    );
    assert_eq!(run.progress.attempts(), 4);
    assert!(FailureClass::Exhausted.retryable());
}

#[test]
fn an_empty_backoff_waits_max_backoff() {
    let mut run = Run::new(policy());
    run.backoff = Vec::new().into_iter();
    assert_eq!(
        run.next(Duration::ZERO, &retryable(None, None)),
        Next::Retry(500 * MS)
    );
}

#[test]
fn retry_after_is_honoured_as_asked_beyond_max_backoff() {
    // "Retry-After: 2" with max_backoff = 500ms waits 2 s, not 0.5 s.
    let mut run = Run::new(policy());
    let asked = retryable(Some(429), Some(Duration::from_secs(2)));
    assert_eq!(
        run.next(Duration::ZERO, &asked),
        Next::Retry(Duration::from_secs(2))
    );
    // It draws no backoff: the next one without Retry-After is the first.
    assert_eq!(
        run.next(Duration::from_secs(2), &retryable(Some(503), None)),
        Next::Retry(100 * MS)
    );
    // Retry-After: 0 (or a date in the past) retries at once.
    assert_eq!(
        run.next(
            Duration::from_secs(3),
            &retryable(Some(429), Some(Duration::ZERO))
        ),
        Next::Retry(Duration::ZERO)
    );
}

#[test]
fn retry_after_up_to_max_pause_is_honoured_and_longer_gives_up() {
    let mut run = Run::new(policy());
    assert_eq!(
        run.next(Duration::ZERO, &retryable(Some(503), Some(10_000 * MS))),
        Next::Retry(10_000 * MS)
    );
    assert_eq!(
        run.next(10_000 * MS, &retryable(Some(503), Some(10_001 * MS))),
        Next::GiveUp(FailureClass::Exhausted)
    );
}

#[test]
fn max_elapsed_bounds_backoff_and_retry_after() {
    let mut p = policy();
    p.retry.max_attempts = 100;
    p.retry.max_elapsed = Some(Duration::from_secs(3));
    let mut run = Run::new(p.clone());
    // 2.5 s in, a 100 ms backoff still ends within 3 s.
    assert_eq!(
        run.next(2500 * MS, &retryable(Some(503), None)),
        Next::Retry(100 * MS)
    );
    // 2.9 s in, a 200 ms backoff would end past it.
    assert_eq!(
        run.next(2900 * MS, &retryable(Some(503), None)),
        Next::GiveUp(FailureClass::Exhausted)
    );

    let mut run = Run::new(p.clone());
    assert_eq!(
        run.next(
            Duration::from_secs(1),
            &retryable(Some(429), Some(Duration::from_secs(2)))
        ),
        Next::Retry(Duration::from_secs(2)),
        "exactly the remaining budget"
    );
    let mut run = Run::new(p);
    assert_eq!(
        run.next(
            Duration::from_secs(1),
            &retryable(Some(429), Some(2001 * MS))
        ),
        Next::GiveUp(FailureClass::Exhausted),
        "past the remaining budget"
    );
}

#[test]
fn a_pause_status_pauses_without_consuming_attempts() {
    let mut p = policy();
    p.retry.max_attempts = 1;
    let mut run = Run::new(p);
    let unauthorized = retryable(Some(401), None);
    for at in [0, 1000, 2000, 3000] {
        assert_eq!(
            run.at(at * MS, &unauthorized),
            Decision {
                next: Next::Pause {
                    status: 401,
                    probe_within: 1000 * MS
                },
                resume_target: false
            }
        );
        run.progress.set_probing(true);
    }
    assert_eq!(run.progress.attempts(), 0);
    // Probes did not use up the single attempt: a retryable answer after
    // them is that attempt, and the probe's other answer resumes the target.
    assert_eq!(
        run.at(4000 * MS, &retryable(Some(503), None)),
        Decision {
            next: Next::GiveUp(FailureClass::Exhausted),
            resume_target: true
        }
    );
    assert_eq!(run.progress.attempts(), 1);
    assert!(!run.progress.probing());
}

#[test]
fn a_probe_answered_otherwise_resumes_the_target_once() {
    let mut run = Run::new(policy());
    assert!(matches!(
        run.next(Duration::ZERO, &permanent(Some(401))),
        Next::Pause { status: 401, .. }
    ));
    run.progress.set_probing(true);
    assert!(run.progress.probing());
    assert_eq!(
        run.at(1000 * MS, &delivered()),
        Decision {
            next: Next::Done,
            resume_target: true
        }
    );
    assert_eq!(run.progress.attempts(), 1);
}

#[test]
fn an_operator_pause_or_resume_ends_probing() {
    let mut run = Run::new(policy());
    assert!(matches!(
        run.next(Duration::ZERO, &permanent(Some(401))),
        Next::Pause { .. }
    ));
    // The gate is no longer paused by a pause status: wait for the gate.
    run.progress.set_probing(false);
    assert_eq!(
        run.at(1000 * MS, &delivered()),
        Decision {
            next: Next::Done,
            resume_target: false
        }
    );
}

#[test]
fn a_record_holding_its_target_past_max_pause_gives_up_and_resumes_it() {
    let mut run = Run::new(policy());
    let unauthorized = permanent(Some(401));
    // The first pause status starts the clock, 5 s in.
    assert!(matches!(
        run.next(5000 * MS, &unauthorized),
        Next::Pause { probe_within, .. } if probe_within == 1000 * MS
    ));
    // The last probe waits only what is left of max_pause.
    assert_eq!(
        run.next(14_500 * MS, &unauthorized),
        Next::Pause {
            status: 401,
            probe_within: 500 * MS
        }
    );
    assert_eq!(
        run.at(15_000 * MS, &unauthorized),
        Decision {
            next: Next::GiveUp(FailureClass::Paused),
            resume_target: true
        }
    );
    assert_eq!(FailureClass::Paused.as_str(), "paused");
    assert!(!FailureClass::Paused.retryable());
    assert_eq!(run.progress.attempts(), 1, "reported as one attempt");
    assert_eq!(
        run.progress.paused_for(run.start + 15_000 * MS),
        Some(10_000 * MS)
    );
}

#[test]
fn the_breaker_counts_only_retryable_failures() {
    assert_eq!(verdict(&retryable(None, None)), Verdict::Failed);
    assert_eq!(verdict(&retryable(Some(503), None)), Verdict::Failed);
    assert_eq!(verdict(&permanent(Some(404))), Verdict::Answered);
    assert_eq!(verdict(&delivered()), Verdict::Answered);
}

#[test]
fn status_labels_and_failure_classes_share_one_range() {
    for (status, label, class) in [
        (Some(101), "1xx", "http_1xx"),
        (Some(204), "2xx", "http_2xx"),
        (Some(308), "3xx", "http_3xx"),
        (Some(404), "4xx", "http_4xx"),
        (Some(503), "5xx", "http_5xx"),
        (Some(600), "other", "http_other"),
        (None, "error", "request"),
    ] {
        assert_eq!(StatusRange::label(status), label);
        assert_eq!(FailureClass::permanent(status).as_str(), class);
    }
}
