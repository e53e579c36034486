//! Which dead letters a replay selects, and what it does with each: the
//! pure decisions and their counts, and the dry-run report.

use std::collections::BTreeMap;

use intops_events::DeadLetter;

use super::super::read::Letter;

/// What a replay does with one dead letter it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Back to the topic it failed from.
    Replay,
    /// To `<prefix>.dlq.parked`: replayed too often.
    Park,
}

/// The decision about one dead letter that passed the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// An earlier replay sent it (and `--again` is not given).
    AlreadyReplayed,
    /// It carries no original value to send.
    Unreplayable,
    /// Its original topic is not this deployment's.
    ForeignTopic,
    /// It is sent on.
    Send(Action),
}

/// Decides one dead letter: `marked` whether an earlier replay sent it,
/// `own_topic` whether its original topic is this deployment's.
pub(crate) fn verdict(
    d: &DeadLetter,
    marked: bool,
    again: bool,
    max_replays: i32,
    own_topic: bool,
) -> Verdict {
    if marked && !again {
        Verdict::AlreadyReplayed
    } else if d.original_value.is_none() {
        Verdict::Unreplayable
    } else if !own_topic {
        Verdict::ForeignTopic
    } else if d.replay_count >= max_replays {
        Verdict::Send(Action::Park)
    } else {
        Verdict::Send(Action::Replay)
    }
}

/// What the driver does next with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `--limit` reached: stop reading.
    Stop,
    /// Not sent, for this reason.
    Skip(Verdict),
    /// Sent on.
    Take(Action),
}

/// How many would be or were selected, and why others were not.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub selected: i64,
    pub to_replay: i64,
    pub to_park: i64,
    pub already_replayed: i64,
    pub unreplayable: i64,
    /// Dead letters whose original topic is not this deployment's.
    pub foreign_topic: i64,
    by_group: BTreeMap<(String, String, String), i64>,
    samples: Vec<String>,
}

impl Selection {
    /// Counts `verdict` about `letter` and says what to do with it. Dead
    /// letters already replayed do not count towards `limit`.
    pub fn admit(&mut self, letter: &Letter, verdict: Verdict, limit: Option<usize>) -> Step {
        if verdict == Verdict::AlreadyReplayed {
            self.already_replayed += 1;
            return Step::Skip(verdict);
        }
        if limit.is_some_and(|n| self.selected >= n as i64) {
            return Step::Stop;
        }
        self.selected += 1;
        let action = match verdict {
            Verdict::AlreadyReplayed => return Step::Skip(verdict),
            Verdict::Unreplayable => {
                self.unreplayable += 1;
                return Step::Skip(verdict);
            }
            Verdict::ForeignTopic => {
                self.foreign_topic += 1;
                return Step::Skip(verdict);
            }
            Verdict::Send(action) => action,
        };
        match action {
            Action::Replay => self.to_replay += 1,
            Action::Park => self.to_park += 1,
        }
        self.note(letter, action);
        Step::Take(action)
    }

    /// Counts `letter` in its group and keeps the first few as samples.
    fn note(&mut self, l: &Letter, action: Action) {
        let d = &l.letter;
        let group = (
            d.flow_id.clone().unwrap_or_else(|| "-".into()),
            d.target_id.clone().unwrap_or_else(|| "-".into()),
            d.error_class.clone(),
        );
        *self.by_group.entry(group).or_default() += 1;
        if self.samples.len() < 5 {
            let to = match action {
                Action::Replay => format!("{} (replay {})", d.original_topic, d.replay_count + 1),
                Action::Park => "parked (replayed too often)".into(),
            };
            self.samples.push(format!(
                "{} -> {to}  key {}  event {}",
                l.location(),
                d.original_key
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                d.event_id.as_deref().unwrap_or("-")
            ));
        }
    }

    /// The dry run's report.
    pub fn dry_run(&self) -> DryRun {
        DryRun {
            selected: self.selected,
            would_replay: self.to_replay,
            would_park: self.to_park,
            skipped_already_replayed: self.already_replayed,
            unreplayable: self.unreplayable,
            skipped_foreign_topic: self.foreign_topic,
            groups: self
                .by_group
                .iter()
                .map(|((flow, target, class), n)| DryRunGroup {
                    flow: flow.clone(),
                    target: target.clone(),
                    error_class: class.clone(),
                    count: *n,
                })
                .collect(),
            first: self.samples.clone(),
        }
    }
}

/// What a dry run found: the counts, the groups by flow, target and error
/// class, and the first few records it would send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    /// Dead letters selected (already replayed ones aside).
    pub selected: i64,
    /// Would be sent back.
    pub would_replay: i64,
    /// Would be parked (replayed too often).
    pub would_park: i64,
    /// Not selected: an earlier replay sent them.
    pub skipped_already_replayed: i64,
    /// Selected but without an original value.
    pub unreplayable: i64,
    /// Selected but from a topic not of this deployment.
    pub skipped_foreign_topic: i64,
    /// Counts by flow, target and error class.
    pub groups: Vec<DryRunGroup>,
    /// The first records, one line each.
    pub first: Vec<String>,
}

/// One group of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRunGroup {
    /// The flow (`-` for none).
    pub flow: String,
    /// The target (`-` for none).
    pub target: String,
    /// The error class.
    pub error_class: String,
    /// How many.
    pub count: i64,
}

impl DryRun {
    /// As `intops dlq replay --dry-run --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("dry_run".into(), true.into());
        }
        v
    }

    /// As `intops dlq replay --dry-run` prints it.
    pub fn text(&self) -> String {
        let mut out = format!(
            "dry run: {} selected; would replay {} and park {}; {} skipped as already replayed; {} unreplayable; {} skipped for a topic not of this deployment; nothing written",
            self.selected,
            self.would_replay,
            self.would_park,
            self.skipped_already_replayed,
            self.unreplayable,
            self.skipped_foreign_topic
        );
        if !self.groups.is_empty() {
            out.push_str(&format!(
                "\n{:<24} {:<16} {:<14} {:>7}",
                "FLOW", "TARGET", "ERROR", "COUNT"
            ));
            for g in &self.groups {
                out.push_str(&format!(
                    "\n{:<24} {:<16} {:<14} {:>7}",
                    g.flow, g.target, g.error_class, g.count
                ));
            }
            out.push_str("\nfirst records:");
            for line in &self.first {
                out.push_str(&format!("\n  {line}"));
            }
        }
        out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use intops_events::Stage;

    use super::*;

    /// A replayable dead letter from `acme.events`, replayed `replays` times.
    pub(in super::super) fn letter(offset: i64, replays: i32) -> Letter {
        Letter {
            topic: "acme.dlq.transform".into(),
            partition: 0,
            offset,
            letter: DeadLetter {
                tenant: None,
                stage: Stage::Transform,
                error_class: "mapping".into(),
                error_message: "boom".into(),
                retryable: false,
                attempts: 1,
                original_topic: "acme.events".into(),
                original_partition: 0,
                original_offset: offset,
                original_key: Some(b"k".to_vec()),
                original_value: Some(b"v".to_vec()),
                original_headers: Vec::new(),
                failed_at: 0,
                replay_count: replays,
                event_id: Some(format!("e{offset}")),
                flow_id: Some("f".into()),
                flow_version: None,
                target_id: None,
                http_status: None,
                response_excerpt: None,
            },
        }
    }

    #[test]
    fn verdicts_in_order_of_precedence() {
        let d = letter(1, 0).letter;
        assert_eq!(
            verdict(&d, false, false, 5, true),
            Verdict::Send(Action::Replay)
        );
        // Marked: skipped unless --again, before anything else.
        let mut empty = d.clone();
        empty.original_value = None;
        assert_eq!(
            verdict(&empty, true, false, 5, false),
            Verdict::AlreadyReplayed
        );
        assert_eq!(
            verdict(&d, true, true, 5, true),
            Verdict::Send(Action::Replay)
        );
        // No value beats a foreign topic.
        assert_eq!(
            verdict(&empty, false, false, 5, false),
            Verdict::Unreplayable
        );
        assert_eq!(verdict(&d, false, false, 5, false), Verdict::ForeignTopic);
        // Parked at max_replays, not before.
        let mut often = d.clone();
        often.replay_count = 4;
        assert_eq!(
            verdict(&often, false, false, 5, true),
            Verdict::Send(Action::Replay)
        );
        often.replay_count = 5;
        assert_eq!(
            verdict(&often, false, false, 5, true),
            Verdict::Send(Action::Park)
        );
        assert_eq!(
            verdict(&often, false, false, 5, false),
            Verdict::ForeignTopic
        );
    }

    #[test]
    fn admit_counts_each_reason_and_stops_at_the_limit() {
        let mut s = Selection::default();
        let l = letter(1, 0);
        let limit = Some(3);
        assert_eq!(
            s.admit(&l, Verdict::AlreadyReplayed, limit),
            Step::Skip(Verdict::AlreadyReplayed)
        );
        assert_eq!(
            s.admit(&l, Verdict::Unreplayable, limit),
            Step::Skip(Verdict::Unreplayable)
        );
        assert_eq!(
            s.admit(&l, Verdict::ForeignTopic, limit),
            Step::Skip(Verdict::ForeignTopic)
        );
        assert_eq!(
            s.admit(&l, Verdict::Send(Action::Park), limit),
            Step::Take(Action::Park)
        );
        // Already replayed ones never count towards the limit, even past it.
        assert_eq!(
            s.admit(&l, Verdict::AlreadyReplayed, limit),
            Step::Skip(Verdict::AlreadyReplayed)
        );
        assert_eq!(
            s.admit(&l, Verdict::Send(Action::Replay), limit),
            Step::Stop
        );
        assert_eq!(
            (
                s.selected,
                s.to_replay,
                s.to_park,
                s.already_replayed,
                s.unreplayable,
                s.foreign_topic
            ),
            (3, 0, 1, 2, 1, 1)
        );
        let mut unlimited = Selection::default();
        for _ in 0..10 {
            assert_eq!(
                unlimited.admit(&l, Verdict::Send(Action::Replay), None),
                Step::Take(Action::Replay)
            );
        }
        assert_eq!((unlimited.selected, unlimited.to_replay), (10, 10));
    }

    #[test]
    fn groups_count_all_and_samples_keep_the_first_five() {
        let mut s = Selection::default();
        for offset in 0..7 {
            s.admit(&letter(offset, 0), Verdict::Send(Action::Replay), None);
        }
        s.admit(&letter(7, 5), Verdict::Send(Action::Park), None);
        assert_eq!(
            s.by_group.get(&("f".into(), "-".into(), "mapping".into())),
            Some(&8)
        );
        assert_eq!(s.samples.len(), 5);
        assert_eq!(
            s.samples[0],
            "acme.dlq.transform/0/0 -> acme.events (replay 1)  key k  event e0"
        );
        let mut parked = Selection::default();
        parked.admit(&letter(7, 5), Verdict::Send(Action::Park), None);
        assert!(
            parked.samples[0].contains("-> parked (replayed too often)"),
            "{}",
            parked.samples[0]
        );
    }
}
