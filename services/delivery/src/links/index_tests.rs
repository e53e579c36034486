//! The index's rules without a broker: order by `updated_at`, local writes
//! first, tombstones, the backward map, and its size.

use crate::links::Write;
use intops_events::{Link, LinkMode};

use super::*;

fn link(flow: &str, key: &str, record_id: Option<&str>, updated_at: i64) -> Link {
    Link {
        tenant: None,
        flow_id: flow.into(),
        mode: LinkMode::Capture,
        via_flow: None,
        entity_key: key.into(),
        target_id: "jira".into(),
        record_id: record_id.map(str::to_string),
        event_id: format!("e-{updated_at}"),
        last_write: Some("00000000000000ff".into()),
        created_at: 1,
        updated_at,
        written_at: None,
        seen_at: None,
        basis_at: None,
        earlier_written_at: None,
        earlier_basis_at: None,
    }
}

fn write_back(flow: &str, key: &str, via: &str, record_id: &str, updated_at: i64) -> Link {
    Link {
        mode: LinkMode::From,
        via_flow: Some(via.into()),
        target_id: "snow".into(),
        ..link(flow, key, Some(record_id), updated_at)
    }
}

fn key(l: &Link) -> String {
    Link::key_of(&l.flow_id, &l.entity_key)
}

#[test]
fn a_link_reads_back_as_written() {
    let index = LinkIndex::new();
    let l = Link {
        written_at: Some(9),
        basis_at: Some(7),
        seen_at: Some(8),
        earlier_written_at: Some(5),
        earlier_basis_at: Some(4),
        ..link("snow-to-jira", "inc-1", Some("OPS-1"), 10)
    };
    assert_eq!(index.apply_read(&key(&l), Some(&l), None), Applied::Stored);
    let e = index.lookup("snow-to-jira", "inc-1").expect("found");
    assert_eq!(
        e,
        Entry {
            flow_id: "snow-to-jira".into(),
            mode: LinkMode::Capture,
            via_flow: None,
            entity_key: "inc-1".into(),
            target_id: "jira".into(),
            record_id: Some("OPS-1".into()),
            last_write: Some(0xff),
            created_at: 1,
            updated_at: 10,
            written: Write {
                written_at: 9,
                basis_at: 7,
            },
            earlier: Write {
                written_at: 5,
                basis_at: 4,
            },
            seen_at: 8,
        }
    );
    assert!(e.is_linked());
    // Written before the times were recorded: none known.
    let old = link("snow-to-jira", "inc-3", Some("OPS-3"), 10);
    index.apply_read(&key(&old), Some(&old), None);
    let e = index.lookup("snow-to-jira", "inc-3").expect("found");
    assert!(!e.written.is_known() && !e.earlier.is_known());
    assert_eq!(e.seen_at, i64::MIN);
    index.apply_read(&key(&old), None, None);
    assert_eq!(index.lookup("snow-to-jira", "inc-2"), None);
    assert_eq!(index.lookup("other-flow", "inc-1"), None);
    assert_eq!(index.len(), 1);

    let w = write_back("jira-to-snow", "OPS-1", "snow-to-jira", "inc-1", 11);
    index.apply_read(&key(&w), Some(&w), None);
    let e = index.lookup("jira-to-snow", "OPS-1").expect("found");
    assert_eq!(
        (e.mode, e.via_flow.as_deref(), e.record_id.as_deref()),
        (LinkMode::From, Some("snow-to-jira"), Some("inc-1"))
    );
}

#[test]
fn an_older_record_from_the_topic_does_not_replace_a_newer_link() {
    let index = LinkIndex::new();
    // The local write of the captured id, then its own pending link read
    // back from the topic: the pending one is older.
    let mut captured = link("f", "k", Some("OPS-1"), 20);
    index.write_local(&mut captured);
    let pending = link("f", "k", None, 10);
    assert_eq!(
        index.apply_read(&key(&pending), Some(&pending), None),
        Applied::Ignored
    );
    assert_eq!(
        index.lookup("f", "k").and_then(|e| e.record_id),
        Some("OPS-1".into())
    );
    // Its own write read back (same updated_at) and a newer one apply.
    assert_eq!(
        index.apply_read(&key(&captured), Some(&captured), None),
        Applied::Stored
    );
    let newer = link("f", "k", Some("OPS-2"), 30);
    assert_eq!(
        index.apply_read(&key(&newer), Some(&newer), None),
        Applied::Stored
    );
    assert_eq!(
        index.lookup("f", "k").and_then(|e| e.record_id),
        Some("OPS-2".into())
    );
}

#[test]
fn a_local_write_is_stamped_after_the_link_it_replaces() {
    let index = LinkIndex::new();
    // Another replica's clock ran ahead.
    let theirs = link("f", "k", Some("OPS-1"), 1_000);
    index.apply_read(&key(&theirs), Some(&theirs), None);
    let mut ours = link("f", "k", Some("OPS-1"), 500);
    index.write_local(&mut ours);
    assert_eq!(ours.updated_at, 1_001, "written to the topic stamped so");
    assert_eq!(index.lookup("f", "k").map(|e| e.updated_at), Some(1_001));
    // Read back from the topic: not older, so it stays.
    assert_eq!(
        index.apply_read(&key(&ours), Some(&ours), None),
        Applied::Stored
    );
}

#[test]
fn a_tombstone_removes_a_link_not_written_after_it() {
    let index = LinkIndex::new();
    let l = link("f", "k:with:colons", Some("OPS-1"), 100);
    index.apply_read(&key(&l), Some(&l), None);
    // Written again (a new event) after the tombstone was produced: kept.
    assert_eq!(index.apply_read(&key(&l), None, Some(99)), Applied::Ignored);
    assert!(index.lookup("f", "k:with:colons").is_some());
    assert_eq!(
        index.apply_read(&key(&l), None, Some(100)),
        Applied::Removed
    );
    assert_eq!(index.lookup("f", "k:with:colons"), None);
    assert_eq!(index.find_record("f", "OPS-1"), None, "backward too");
    assert!(index.is_empty());
    // A tombstone of nothing, and one without a timestamp.
    assert_eq!(index.apply_read("f:gone", None, None), Applied::Ignored);
    index.apply_read(&key(&l), Some(&l), None);
    assert_eq!(index.apply_read(&key(&l), None, None), Applied::Removed);
}

#[test]
fn the_backward_map_finds_capture_links_by_record_id() {
    let index = LinkIndex::new();
    let a = link("snow-to-jira", "inc-1", Some("OPS-1"), 1);
    index.apply_read(&key(&a), Some(&a), None);
    assert_eq!(
        index
            .find_record("snow-to-jira", "OPS-1")
            .map(|e| e.entity_key),
        Some("inc-1".into())
    );
    assert_eq!(index.find_record("other", "OPS-1"), None);

    // Pending links and write-back links are not in it.
    let p = link("snow-to-jira", "inc-2", None, 1);
    index.apply_read(&key(&p), Some(&p), None);
    let w = write_back("jira-to-snow", "OPS-9", "snow-to-jira", "inc-1", 1);
    index.apply_read(&key(&w), Some(&w), None);
    assert_eq!(index.find_record("jira-to-snow", "inc-1"), None);
    assert_eq!(index.find_record("snow-to-jira", ""), None);

    // The record id changes: the old one no longer finds it.
    let moved = link("snow-to-jira", "inc-1", Some("OPS-7"), 2);
    index.apply_read(&key(&moved), Some(&moved), None);
    assert_eq!(index.find_record("snow-to-jira", "OPS-1"), None);
    assert!(index.find_record("snow-to-jira", "OPS-7").is_some());

    // Two entities with one record id: the newest write finds it, and
    // removing the older one leaves it.
    let b = link("snow-to-jira", "inc-3", Some("OPS-7"), 3);
    index.apply_read(&key(&b), Some(&b), None);
    assert_eq!(
        index
            .find_record("snow-to-jira", "OPS-7")
            .map(|e| e.entity_key),
        Some("inc-3".into())
    );
    index.apply_read(&key(&moved), None, None);
    assert_eq!(
        index
            .find_record("snow-to-jira", "OPS-7")
            .map(|e| e.entity_key),
        Some("inc-3".into())
    );
}

#[test]
fn removed_slots_are_reused() {
    let index = LinkIndex::new();
    for i in 0..100 {
        let l = link("f", &format!("k{i}"), Some(&format!("r{i}")), 1);
        index.apply_read(&key(&l), Some(&l), None);
    }
    let mut before = 0;
    for round in 0..5 {
        if round == 1 {
            before = index.heap_bytes();
        }
        for i in 0..100 {
            index.apply_read(&format!("f:k{i}"), None, None);
        }
        assert!(index.is_empty());
        for i in 0..100 {
            let l = link("f", &format!("k{i}"), Some(&format!("r{i}")), round + 2);
            index.apply_read(&key(&l), Some(&l), None);
        }
    }
    assert_eq!(index.len(), 100);
    assert_eq!(index.heap_bytes(), before, "no growth from churn");
    for i in 0..100 {
        assert_eq!(
            index
                .find_record("f", &format!("r{i}"))
                .map(|e| e.entity_key),
            Some(format!("k{i}"))
        );
    }
}

/// A rough size check (the real measure is the benchmark's resident
/// memory): 100,000 links with ServiceNow- and Jira-sized keys stay under
/// 200 bytes each.
#[test]
fn links_are_compact() {
    let index = LinkIndex::new();
    let n = 100_000;
    for i in 0..n {
        let l = link(
            "snow-p1-to-jira",
            &format!("{i:032x}"),
            Some(&format!("OPS-{i}")),
            1,
        );
        index.write_local(&mut l.clone());
    }
    assert_eq!(index.len(), n);
    let per_link = index.heap_bytes() / n;
    assert!(per_link < 200, "{per_link} bytes per link");
}

#[test]
fn positions_advance_per_partition() {
    let index = LinkIndex::new();
    index.read_position(0, 4);
    index.read_position(0, 2);
    index.read_position(2, 0);
    let positions = index.positions();
    assert_eq!(positions.get(&0), Some(&5));
    assert_eq!(positions.get(&2), Some(&1));
    assert_eq!(positions.get(&1), None);
}
