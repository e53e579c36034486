//! Which links the sweeper expires, and the tombstones it writes.

use std::sync::Mutex;
use std::time::Duration;

use intops_events::{Link, LinkMode};

use super::*;

const DAY: i64 = 24 * 3600 * 1_000_000;

fn link(flow: &str, key: &str, record_id: &str, target: &str, updated_at: i64) -> Link {
    Link {
        tenant: None,
        flow_id: flow.into(),
        mode: LinkMode::Capture,
        via_flow: None,
        entity_key: key.into(),
        target_id: target.into(),
        record_id: Some(record_id.into()),
        event_id: "e".into(),
        last_write: None,
        created_at: 0,
        updated_at,
        written_at: None,
        seen_at: None,
        basis_at: None,
        earlier_written_at: None,
        earlier_basis_at: None,
    }
}

fn put(index: &LinkIndex, mut l: Link) {
    index.write_local(&mut l);
}

fn names(expired: &[Expired]) -> Vec<String> {
    let mut n: Vec<String> = expired
        .iter()
        .map(|e| format!("{}:{}", e.flow_id, e.entity_key))
        .collect();
    n.sort();
    n
}

fn targets(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|t| (*t).to_string()).collect()
}

#[test]
fn the_interval_is_a_quarter_of_the_shortest_expiry_within_bounds() {
    assert_eq!(Expiry::default().interval(), Duration::from_secs(3600));
    let e = Expiry::new(HashMap::from([
        ("a".to_string(), Duration::from_secs(365 * 24 * 3600)),
        ("b".to_string(), Duration::from_secs(40 * 60)),
    ]));
    assert_eq!(e.interval(), Duration::from_secs(600));
    assert_eq!(e.of("b"), Duration::from_secs(40 * 60));
    assert_eq!(e.of("unknown"), DEFAULT_LINK_EXPIRY);
    let short = Expiry::new(HashMap::from([("a".to_string(), Duration::from_secs(2))]));
    assert_eq!(short.interval(), Duration::from_secs(1));
}

#[test]
fn the_flows_file_sets_each_flows_expiry() {
    let flows = intops_flows::load_str(
        r#"
[[sources]]
id = "snow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[sources]]
id = "jira"
kind = "webhook"
auth = "none"
entity_key = ".key"

[[targets]]
id = "jira"
base_url = "http://127.0.0.1:1"

[[targets]]
id = "snow"
base_url = "http://127.0.0.1:2"

[[flows]]
id = "snow-to-jira"
source = "snow"
target = "jira"
method = "POST"
path = "/rest/api/3/issue"
link = { capture = ".key", expire_after = "30d" }
update = { path = "/rest/api/3/issue/{{ $link }}" }

[[flows]]
id = "jira-to-snow"
source = "jira"
target = "snow"
method = "PATCH"
path = "/api/now/table/incident/{{ $link }}"
link = { from = "snow-to-jira" }

[[flows]]
id = "plain"
source = "snow"
target = "jira"
path = "/x"
"#,
    )
    .expect("flows");
    let e = Expiry::from_flows(&flows);
    assert_eq!(e.of("snow-to-jira"), Duration::from_secs(30 * 24 * 3600));
    assert_eq!(e.of("jira-to-snow"), DEFAULT_LINK_EXPIRY);
    assert_eq!(e.of("plain"), DEFAULT_LINK_EXPIRY);
}

#[test]
fn links_idle_past_their_flows_expiry_expire() {
    let index = LinkIndex::new();
    let now = 1_000 * DAY;
    let expiry = Expiry::new(HashMap::from([(
        "short".to_string(),
        Duration::from_secs(10 * 24 * 3600),
    )]));
    put(&index, link("short", "old", "r1", "jira", now - 11 * DAY));
    put(&index, link("short", "fresh", "r2", "jira", now - 9 * DAY));
    put(
        &index,
        link("default", "old", "r3", "jira", now - 366 * DAY),
    );
    put(
        &index,
        link("default", "young", "r4", "jira", now - 300 * DAY),
    );
    // Another replica's target.
    put(
        &index,
        link("short", "elsewhere", "r5", "crm", now - 11 * DAY),
    );
    let idle = idle(&index, &expiry, &targets(&["jira"]), now);
    assert_eq!(names(&idle), ["default:old", "short:old"]);
}

#[test]
fn a_capture_link_a_recent_write_back_follows_stays() {
    let index = LinkIndex::new();
    let now = 1_000 * DAY;
    let expiry = Expiry::new(HashMap::from([
        (
            "snow-to-jira".to_string(),
            Duration::from_secs(10 * 24 * 3600),
        ),
        (
            "jira-to-snow".to_string(),
            Duration::from_secs(10 * 24 * 3600),
        ),
    ]));
    put(
        &index,
        link("snow-to-jira", "inc-1", "OPS-1", "jira", now - 20 * DAY),
    );
    put(
        &index,
        link("snow-to-jira", "inc-2", "OPS-2", "jira", now - 20 * DAY),
    );
    let back = |key: &str, record_id: &str, at| Link {
        mode: LinkMode::From,
        via_flow: Some("snow-to-jira".into()),
        ..link("jira-to-snow", key, record_id, "snow", at)
    };
    // inc-1's conversation is alive on the other side; inc-2's is not.
    put(&index, back("OPS-1", "inc-1", now - DAY));
    put(&index, back("OPS-2", "inc-2", now - 15 * DAY));
    let idle = idle(&index, &expiry, &targets(&["jira", "snow"]), now);
    assert_eq!(names(&idle), ["jira-to-snow:OPS-2", "snow-to-jira:inc-2"]);
}

/// Tombstones in memory.
#[derive(Debug, Default)]
struct Written(Mutex<Vec<String>>);

impl Tombstones for Written {
    fn write<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send + 'a>> {
        self.0.lock().expect("written").push(key.to_string());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_sweep_removes_idle_links_and_writes_their_tombstones() {
    let index = LinkIndex::new();
    let now = now_micros();
    put(&index, link("f", "old:1", "r1", "jira", now - 400 * DAY));
    put(&index, link("f", "new", "r2", "jira", now));
    let written = Written::default();
    let n = sweep(&index, &Expiry::default(), &targets(&["jira"]), &written).await;
    assert_eq!(n, 1);
    assert_eq!(*written.0.lock().expect("written"), ["f:old:1"]);
    assert_eq!(index.lookup("f", "old:1"), None);
    assert!(index.lookup("f", "new").is_some());
    assert_eq!(index.find_record("f", "r1"), None);
}

#[test]
fn a_link_written_after_it_was_found_idle_is_not_expired() {
    let index = LinkIndex::new();
    put(&index, link("f", "k", "r", "jira", 5));
    // A new event wrote it between the scan and the removal.
    put(&index, link("f", "k", "r", "jira", 6));
    assert!(!index.expire_local("f", "k", 5));
    assert!(index.lookup("f", "k").is_some());
    assert!(index.expire_local("f", "k", 6));
}
