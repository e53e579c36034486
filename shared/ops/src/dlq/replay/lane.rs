//! One lane's work in a replay: send a dead letter on (or park it), then,
//! once the broker acknowledged that, write its outcome and queue its mark.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use intops_events::{
    DeadLetter, Outcome, OutcomeStatus, RecordKind, ReplayMark, Stage, now_micros,
};
use intops_kafka::{Record, ServiceContext, dlq_headers};

use super::super::marks::Marker;
use super::super::read::Letter;
use super::select::Action;
use crate::Watch;
use crate::followups::Followups;
use crate::send;

/// One dead letter to send on, and how.
#[derive(Debug)]
pub(crate) struct Job {
    pub letter: Letter,
    pub action: Action,
}

/// What the lanes sent so far.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub sent: AtomicI64,
    pub parked: AtomicI64,
}

impl Counts {
    /// Records replayed and acknowledged so far.
    pub fn sent(&self) -> i64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records parked so far.
    pub fn parked(&self) -> i64 {
        self.parked.load(Ordering::Relaxed)
    }
}

/// What every lane of one replay shares.
#[derive(Debug)]
pub(crate) struct Run {
    pub ctx: ServiceContext,
    pub followups: Followups,
    pub marker: Marker,
    pub counts: Arc<Counts>,
    pub replay_id: String,
    pub parked_topic: String,
    pub watch: Arc<dyn Watch>,
}

/// Where a dead letter went, as its outcome and mark record it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Landing {
    sent_to: String,
    replay_count: i32,
    status: OutcomeStatus,
}

impl Landing {
    fn of(d: &DeadLetter, action: Action, parked_topic: &str) -> Self {
        match action {
            Action::Replay => Self {
                sent_to: d.original_topic.clone(),
                replay_count: d.replay_count + 1,
                status: OutcomeStatus::Replayed,
            },
            Action::Park => Self {
                sent_to: parked_topic.to_string(),
                replay_count: d.replay_count,
                status: OutcomeStatus::Parked,
            },
        }
    }

    /// The outcome to write, for dead letters that name their event.
    fn outcome(&self, d: &DeadLetter, at: i64) -> Option<Outcome> {
        d.event_id.as_ref().map(|event_id| Outcome {
            tenant: d.tenant.clone(),
            link_action: None,
            record_id: None,
            event_id: event_id.clone(),
            stage: Stage::Replay,
            status: self.status,
            flow_id: d.flow_id.clone(),
            target_id: d.target_id.clone(),
            attempts: self.replay_count,
            http_status: None,
            latency_ms: None,
            error: (self.status == OutcomeStatus::Parked)
                .then(|| format!("replayed {} times; parked", d.replay_count)),
            at,
        })
    }

    /// The mark that records `letter` as sent.
    fn mark(self, letter: &Letter) -> ReplayMark {
        ReplayMark {
            dead_letter_topic: letter.topic.clone(),
            dead_letter_partition: letter.partition,
            dead_letter_offset: letter.offset,
            sent_to: self.sent_to,
            replay_count: self.replay_count,
        }
    }
}

/// The headers of a replayed record: the original ones without any
/// earlier replay's, then this replay's count, id and source.
fn replay_headers<'a>(
    d: &'a DeadLetter,
    count: &'a str,
    replay_id: &'a str,
    location: &'a str,
) -> Vec<(&'a str, &'a [u8])> {
    let mut headers: Vec<(&str, &[u8])> = d
        .original_headers
        .iter()
        .filter(|h| !h.key.starts_with(dlq_headers::REPLAY_PREFIX))
        .map(|h| (h.key.as_str(), h.value.as_deref().unwrap_or_default()))
        .collect();
    headers.push((dlq_headers::REPLAY_COUNT, count.as_bytes()));
    headers.push((dlq_headers::REPLAY_ID, replay_id.as_bytes()));
    headers.push((dlq_headers::REPLAY_SOURCE, location.as_bytes()));
    headers
}

impl Run {
    /// Sends one dead letter on (or parks it) and, once the broker
    /// acknowledged that, starts writing its outcome and then queues its mark.
    pub async fn handle(&self, job: Job) -> anyhow::Result<()> {
        self.followups.check()?;
        let location = job.letter.location();
        let d = &job.letter.letter;
        let key = d.original_key.clone().unwrap_or_default();
        // For a replay, the wait for the broker's acknowledgement: the lane
        // queues its key's next record meanwhile (same partition, so the
        // idempotent producer keeps their order).
        let mut acknowledgement = None;
        match job.action {
            Action::Replay => {
                let count = (d.replay_count + 1).to_string();
                let headers = replay_headers(d, &count, &self.replay_id, &location);
                let queued = send::queue(
                    &self.ctx,
                    Record {
                        topic: &d.original_topic,
                        key: &key,
                        value: d.original_value.as_deref().unwrap_or_default(),
                        headers: &headers,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot replay {location}: {e}"))?;
                acknowledgement = Some(queued);
            }
            Action::Park => {
                send::typed(
                    &self.ctx,
                    &self.parked_topic,
                    RecordKind::DeadLetter,
                    &key,
                    d,
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot park {location}: {e}"))?;
                self.counts.parked.fetch_add(1, Ordering::Relaxed);
                self.watch.warning(&format!(
                    "parked {location}: replayed {} time(s) already",
                    d.replay_count
                ));
            }
        }
        let landing = Landing::of(d, job.action, &self.parked_topic);
        let outcome = landing.outcome(d, now_micros());
        let mark = landing.mark(&job.letter);
        // The acknowledgement, the outcome, then the mark: a dead letter
        // counts as replayed only once everything derived from it was
        // acknowledged.
        let (ctx, marker, counts) = (self.ctx.clone(), self.marker.clone(), self.counts.clone());
        self.followups
            .spawn(async move {
                if let Some(acknowledged) = acknowledgement {
                    acknowledged.await.map_err(|e| {
                        anyhow::anyhow!(
                            "cannot replay {location}: {e} (run the replay again: it resumes)"
                        )
                    })?;
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(o) = &outcome {
                    send::typed(&ctx, &ctx.topics.outcomes(), RecordKind::Outcome, &key, o)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("cannot write the outcome of {location}: {e}")
                        })?;
                }
                marker.mark(mark).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use intops_events::KafkaHeader;

    use super::super::select::tests::letter;
    use super::*;

    #[test]
    fn a_replay_goes_back_with_one_more_replay_and_no_error() {
        let l = letter(3, 2);
        let landing = Landing::of(&l.letter, Action::Replay, "acme.dlq.parked");
        assert_eq!(
            landing,
            Landing {
                sent_to: "acme.events".into(),
                replay_count: 3,
                status: OutcomeStatus::Replayed
            }
        );
        let outcome = landing.outcome(&l.letter, 42).expect("has an event id");
        assert_eq!(
            (
                outcome.event_id.as_str(),
                outcome.stage,
                outcome.status,
                outcome.attempts,
                outcome.error,
                outcome.at
            ),
            ("e3", Stage::Replay, OutcomeStatus::Replayed, 3, None, 42)
        );
        let mark = landing.mark(&l);
        assert_eq!(
            (mark.location(), mark.sent_to.as_str(), mark.replay_count),
            ("acme.dlq.transform/0/3".to_string(), "acme.events", 3)
        );
    }

    #[test]
    fn a_parked_letter_keeps_its_count_and_says_why() {
        let mut l = letter(4, 5);
        let landing = Landing::of(&l.letter, Action::Park, "acme.dlq.parked");
        assert_eq!(
            (
                landing.sent_to.as_str(),
                landing.replay_count,
                landing.status
            ),
            ("acme.dlq.parked", 5, OutcomeStatus::Parked)
        );
        let outcome = landing.outcome(&l.letter, 1).expect("has an event id");
        assert_eq!(outcome.error.as_deref(), Some("replayed 5 times; parked"));
        l.letter.event_id = None;
        assert!(landing.outcome(&l.letter, 1).is_none());
    }

    #[test]
    fn replay_headers_replace_earlier_replays() {
        let mut d = letter(1, 1).letter;
        d.original_headers = vec![
            KafkaHeader {
                key: "traceparent".into(),
                value: Some(b"t".to_vec()),
            },
            KafkaHeader {
                key: dlq_headers::REPLAY_COUNT.into(),
                value: Some(b"1".to_vec()),
            },
            KafkaHeader {
                key: "empty".into(),
                value: None,
            },
        ];
        let headers = replay_headers(&d, "2", "r-1", "acme.dlq.transform/0/1");
        let expected: Vec<(&str, &[u8])> = vec![
            ("traceparent", b"t"),
            ("empty", b""),
            (dlq_headers::REPLAY_COUNT, b"2"),
            (dlq_headers::REPLAY_ID, b"r-1"),
            (dlq_headers::REPLAY_SOURCE, b"acme.dlq.transform/0/1"),
        ];
        assert_eq!(headers, expected);
    }
}
