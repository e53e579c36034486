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

use super::{Entry, Write};

/// Whether a source event ingested at `ingested_at`, about to be written
/// to the other side through `out` (this flow's link), is the losing echo
/// of a crossing with a write of `into` (the conversation's links that
/// write *into* the event's source).
pub fn loses(out: &Entry, into: &[Entry], ingested_at: i64) -> bool {
    if !out.written.is_known() || out.seen_at == super::store::NEVER {
        // Links written before these times existed: no conflict decided.
        return false;
    }
    let Some(echoed) = into
        .iter()
        .flat_map(|e| [e.written, e.earlier])
        .filter(|w| w.is_known() && w.written_at < ingested_at)
        .max_by_key(|w| w.written_at)
    else {
        return false;
    };
    crossed(out, &echoed) && echoed.basis_at <= out.seen_at
}

/// `out` had answered no event of its source since `echoed` went out into
/// it, and `out` wrote to the other side after `echoed`'s event.
fn crossed(out: &Entry, echoed: &Write) -> bool {
    out.seen_at < echoed.written_at && echoed.basis_at < out.written.written_at
}

#[cfg(test)]
mod tests {
    use intops_events::LinkMode;

    use super::*;

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
