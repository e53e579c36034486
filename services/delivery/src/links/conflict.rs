//! The conflict rule: when the same conversation changed on both sides
//! within one round trip, intops wrote each side's change into the other
//! side, and the two writes crossed: each side now holds the other's
//! change, and each echo would carry it back, forever. The newer change
//! (by ingest time) wins: the echo that would undo it is skipped
//! (`conflict`), the other goes through and settles both sides.
//!
//! An event of side S ingested at `t` is the echo of the last write into
//! S that went out before `t` (a link keeps its last two: a later one may
//! already have gone out when the event is judged). That write and this
//! flow's last write to the other side crossed when each went out after
//! the newest event of its source the other had answered.

use intops_events::{DeliveryRequest, Link, now_micros};

use super::store::NEVER;
use super::{Entry, Write, digest};

/// What the rule says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No crossing: the event is judged as usual.
    Clear,
    /// The event is the first of its side after a crossing; `loses`: it
    /// echoes the write that carried the older change.
    Crossed { loses: bool },
}

impl Verdict {
    /// Whether the event follows a crossing (it must then be recorded as
    /// answered, whatever is done with it).
    pub fn crossed(self) -> bool {
        matches!(self, Verdict::Crossed { .. })
    }

    /// Whether the event is the losing echo: not sent.
    pub fn loses(self) -> bool {
        self == Verdict::Crossed { loses: true }
    }
}

/// The rule for a source event ingested at `ingested_at`, about to be
/// written to the other side through `out` (this flow's link), against
/// `into` (the conversation's links that write *into* the event's
/// source, appending flows left out).
pub fn judge(out: &Entry, into: &[Entry], ingested_at: i64) -> Verdict {
    if !out.written.is_known() || out.seen_at == NEVER {
        // Links written before these times existed: no conflict decided.
        return Verdict::Clear;
    }
    let Some(echoed) = into
        .iter()
        .flat_map(|e| [e.written, e.earlier])
        .filter(|w| w.is_known() && w.written_at < ingested_at)
        .max_by_key(|w| w.written_at)
    else {
        return Verdict::Clear;
    };
    if !crossed(out, &echoed) {
        return Verdict::Clear;
    }
    Verdict::Crossed {
        loses: echoed.basis_at <= out.seen_at,
    }
}

/// [`judge`]'s `loses`.
pub fn loses(out: &Entry, into: &[Entry], ingested_at: i64) -> bool {
    judge(out, into, ingested_at).loses()
}

/// `out` had answered no event of its source since `echoed` went out into
/// it, and `out` wrote to the other side after `echoed`'s event.
fn crossed(out: &Entry, echoed: &Write) -> bool {
    out.seen_at < echoed.written_at && echoed.basis_at < out.written.written_at
}

/// `link` as it is, with `request`'s event recorded as answered (its
/// `seen_at`; never earlier than before), to write when an event after a
/// crossing is not sent: the next event of that side is then a change
/// again.
pub fn answered(link: &Entry, request: &DeliveryRequest) -> Link {
    Link {
        tenant: request.tenant.clone(),
        flow_id: link.flow_id.clone(),
        mode: link.mode,
        via_flow: link.via_flow.clone(),
        entity_key: link.entity_key.clone(),
        target_id: link.target_id.clone(),
        record_id: link.record_id.clone(),
        event_id: request.event_id.clone(),
        last_write: link.last_write.map(digest::text),
        created_at: link.created_at,
        updated_at: now_micros(),
        written_at: known(link.written.written_at),
        basis_at: known(link.written.basis_at),
        seen_at: later_seen(link.seen_at, request),
        earlier_written_at: known(link.earlier.written_at),
        earlier_basis_at: known(link.earlier.basis_at),
    }
}

/// The later of `before` and `request`'s ingest time, as a link records it
/// (`None`: neither known): a replayed old event never moves it back.
pub fn later_seen(before: i64, request: &DeliveryRequest) -> Option<i64> {
    let now = (request.ingested_at > 0).then_some(request.ingested_at);
    match (known(before), now) {
        (Some(b), Some(n)) => Some(b.max(n)),
        (b, n) => b.or(n),
    }
}

/// A time recorded on a link, `None` when not known.
pub fn known(at: i64) -> Option<i64> {
    (at != NEVER).then_some(at)
}

#[cfg(test)]
mod tests {
    use intops_events::LinkMode;

    use super::*;

    #[test]
    fn a_plain_echo_after_a_crossing_of_different_fields_is_recorded() {
        // SNOW's description (100) and Jira's status (95) cross: written
        // into Jira at 110, into SNOW at 115. The echoes map to what was
        // last written (different fields): plain echoes, but crossed, so
        // they must be recorded; a recorded one ends the crossing.
        let into_jira = link(100, 100, 110);
        let into_snow = link(95, 95, 115);
        let verdict = judge(&into_jira, std::slice::from_ref(&into_snow), 120);
        assert!(verdict.crossed());
        let recorded = link(120, 100, 110);
        assert_eq!(
            judge(&recorded, std::slice::from_ref(&into_snow), 1000),
            Verdict::Clear,
            "a real change later is a change"
        );
    }

    #[test]
    fn seen_never_moves_back() {
        let mut request = DeliveryRequest {
            tenant: None,
            event_id: "e".into(),
            flow_id: "f".into(),
            flow_version: "v".into(),
            target_id: "t".into(),
            entity_key: "k".into(),
            method: "PUT".into(),
            path: "/".into(),
            headers: Default::default(),
            body: String::new(),
            created_at: 0,
            ingested_at: 50,
            link: None,
        };
        assert_eq!(later_seen(80, &request), Some(80), "a replayed old event");
        assert_eq!(later_seen(NEVER, &request), Some(50));
        request.ingested_at = 0;
        assert_eq!(later_seen(80, &request), Some(80));
        assert_eq!(later_seen(NEVER, &request), None);
    }

    /// A link that last answered a source event ingested at `seen` and
    /// wrote the request of an event ingested at `basis` at `written`.
    fn link(seen: i64, basis: i64, written: i64) -> Entry {
        Entry {
            flow_id: "f".into(),
            mode: LinkMode::Capture,
            via_flow: None,
            entity_key: "k".into(),
            target_id: "t".into(),
            record_id: Some("r".into()),
            last_write: Some(1),
            created_at: 0,
            updated_at: written,
            written: Write {
                written_at: written,
                basis_at: basis,
            },
            earlier: Write::default(),
            seen_at: seen,
        }
    }

    /// `l` after one more write.
    fn then(l: &Entry, basis: i64, written: i64) -> Entry {
        Entry {
            earlier: l.written,
            written: Write {
                written_at: written,
                basis_at: basis,
            },
            seen_at: basis,
            ..l.clone()
        }
    }

    // Times: A1 (a change in A) ingested at 10, B1 (in B) at 20.

    #[test]
    fn crossed_writes_let_the_newer_change_through_and_skip_the_older_echo() {
        // A1 written into B at 30, B1 into A at 40: crossed.
        let into_b = link(10, 10, 30);
        let into_a = link(20, 20, 40);
        // B's echo of the write at 30 carries A1 back to A: the older
        // change, skipped.
        assert!(loses(&into_a, std::slice::from_ref(&into_b), 50));
        // A's echo of the write at 40 carries B1 to B: the newer, sent.
        assert!(!loses(&into_b, &[into_a], 50));
    }

    #[test]
    fn the_newer_change_wins_whichever_write_came_first() {
        // B1 written into A at 30, A1 into B at 40.
        let into_a = link(20, 20, 30);
        let into_b = link(10, 10, 40);
        assert!(
            loses(&into_a, std::slice::from_ref(&into_b), 50),
            "B's echo carries A1"
        );
        assert!(!loses(&into_b, &[into_a], 35), "A's echo carries B1");
    }

    #[test]
    fn an_echo_is_judged_against_the_write_it_echoes_not_a_later_one() {
        // A1 into B at 30; B1 into A at 25; A's echo of that (ingested 28)
        // into B at 38: B's echo of the write at 30, ingested 35, is
        // judged before the write at 38 it did not see.
        let first = link(10, 10, 30);
        let into_b = then(&first, 28, 38);
        let into_a = link(20, 20, 25);
        assert!(loses(&into_a, &[into_b], 35));
    }

    #[test]
    fn a_write_after_the_other_sides_answer_is_no_crossing() {
        // A1 written into B at 30; B's echo (ingested 35) written back
        // into A at 40: sequential, not crossed.
        let into_b = link(10, 10, 30);
        let into_a = link(35, 35, 40);
        assert!(!loses(&into_b, std::slice::from_ref(&into_a), 50));
        assert!(!loses(&into_a, &[into_b], 50));
    }

    #[test]
    fn an_event_before_any_write_into_its_side_is_not_an_echo() {
        let into_b = link(10, 10, 30);
        let into_a = link(20, 20, 40);
        assert!(!loses(&into_a, &[into_b], 25));
    }

    #[test]
    fn once_a_side_answered_after_the_crossing_it_is_over() {
        let into_b = link(10, 10, 30);
        // The losing echo (ingested 50) was skipped: seen_at 50.
        let into_a = link(50, 20, 40);
        assert!(!loses(&into_a, &[into_b], 60));
    }

    #[test]
    fn the_latest_of_several_write_backs_is_the_one_echoed() {
        let into_b = link(10, 10, 40);
        // Two flows write into A: at 8, and at 30 (an event of 5 that was
        // delayed). A's event at 50 echoes the write at 30, which crossed.
        let early = link(4, 4, 8);
        let late = link(5, 5, 30);
        assert!(loses(&into_b, &[early.clone(), late], 50));
        assert!(!loses(&into_b, &[early], 50));
    }

    #[test]
    fn links_without_the_times_decide_no_conflict() {
        let mut into_b = link(10, 10, 30);
        into_b.written = Write::default();
        let into_a = link(20, 20, 40);
        assert!(!loses(&into_a, std::slice::from_ref(&into_b), 50));
        assert!(!loses(&into_b, &[into_a], 50));
    }
}
