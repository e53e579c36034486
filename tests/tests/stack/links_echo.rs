//! No ping-pong (issue 16, item 4): two mock systems that each send a
//! signed webhook for every write they receive — intops's own included —
//! and flows that sync both ways (ServiceNow short_description ↔ Jira
//! summary; Jira comments → work notes with `echo = false`, and the same
//! comment text made twice becomes two notes). After every real change on
//! either side the pipeline goes quiet, the change reached the other side,
//! both sides agree, and at most one redundant request was made per real
//! change; the changes intops caused come back and stop as `echo`.
//!
//! Several conversations run at the same time (one round changes every
//! incident at once), and one round changes two different fields of the
//! same conversation on both sides at once. Between rounds the test waits
//! until the pipeline is quiet: a round that changes the *same* field on
//! both sides before the previous change came back is a conflict, not an
//! echo: `the_same_field_changed_on_both_sides_at_once_settles` is that
//! case (the newer change wins on both sides, the older one's echo is
//! skipped as `conflict`).

use std::time::Duration;

use intops_events::{LinkAction, OutcomeStatus};
use intops_tests::Pipeline;
use intops_tests::conversation::{Between, delivery_outcomes, wait_quiet};
use intops_tests::itsm::{Incident, JiraMock, ServiceNowMock};
use serde_json::json;

const SECRET: &str = "echo-test-secret";
const WAIT: Duration = Duration::from_secs(90);
/// How long nothing may move before the pipeline counts as quiet: well
/// above one webhook → ingest → transform → delivery → write round trip
/// on the local stack (tens of milliseconds).
const QUIET: Duration = Duration::from_millis(1500);
/// The flows of the main scenario (`flows(.., "echo")`).
const TO_JIRA: &str = "echo-snow-to-jira";
const SUMMARY_BACK: &str = "echo-jira-summary-to-snow";
const COMMENTS_BACK: &str = "echo-jira-comments-to-snow";
/// Conversations changed at the same time.
const CONVERSATIONS: usize = 3;

/// The flows file; flow ids `<tag>-snow-to-jira`, `<tag>-jira-summary-to-snow`,
/// `<tag>-jira-comments-to-snow`, targets `<tag>-jira`, `<tag>-snow` (the
/// link metrics are labelled by flow: one tag per test).
fn flows(jira: &JiraMock, snow: &ServiceNowMock, tag: &str) -> String {
    format!(
        r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = {{ hmac_sha256 = {{ file = "{{secrets}}/secret" }} }}
entity_key = ".sys_id"
event_type = ".event_type"

[[sources]]
id = "jira"
kind = "webhook"
auth = {{ hmac_sha256 = {{ file = "{{secrets}}/secret" }}, header = "X-Hub-Signature", prefix = "sha256=" }}
entity_key = ".issue.key"
event_type = ".webhookEvent"

[[targets]]
id = "{tag}-jira"
base_url = "{jira}"
timeout = "10s"
retry = {{ max_attempts = 5, initial_backoff = "100ms", max_backoff = "1s" }}

[[targets]]
id = "{tag}-snow"
base_url = "{snow}"
timeout = "10s"
retry = {{ max_attempts = 5, initial_backoff = "100ms", max_backoff = "1s" }}

# Every incident is a Jira issue; its short description is the summary.
[[flows]]
id = "{tag}-snow-to-jira"
source = "servicenow"
target = "{tag}-jira"
method = "POST"
path = "/rest/api/3/issue"
map = '{{fields: {{project: {{key: "OPS"}}, summary: .short_description}}}}'
link = {{ capture = ".key" }}
update = {{ method = "PUT", path = "/rest/api/3/issue/{{{{ $link }}}}" }}

# The issue's summary goes back to the incident (created and updated).
[[flows]]
id = "{tag}-jira-summary-to-snow"
source = "jira"
when = '.webhookEvent != "comment_created"'
target = "{tag}-snow"
link = {{ from = "{tag}-snow-to-jira" }}
method = "PATCH"
path = "/api/now/table/incident/{{{{ $link }}}}"
map = '{{short_description: .issue.fields.summary}}'

# Comments go back as work notes. Notes append: the same text twice is
# two notes, so this flow sends repeats (`echo = false`); the summary flow
# above ends the loop.
[[flows]]
id = "{tag}-jira-comments-to-snow"
source = "jira"
when = '.webhookEvent == "comment_created"'
target = "{tag}-snow"
link = {{ from = "{tag}-snow-to-jira", echo = false }}
method = "PATCH"
path = "/api/now/table/incident/{{{{ $link }}}}"
map = '{{work_notes: .comment.body}}'
"#,
        jira = jira.base_url(),
        snow = snow.base_url(),
    )
}

/// One real change, made as a user of one of the systems.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// ServiceNow: the incident's short description.
    SnowSummary,
    /// Jira: the issue's summary.
    JiraSummary,
    /// Jira: a comment.
    JiraComment,
}

/// One conversation: an incident and the issue it became.
struct Conversation {
    sys_id: String,
    key: String,
    /// The summary both sides must end with.
    summary: String,
    /// Every comment made in Jira, in order.
    comments: Vec<String>,
}

impl Conversation {
    fn apply(
        &mut self,
        change: Change,
        round: usize,
        i: usize,
        jira: &JiraMock,
        snow: &ServiceNowMock,
    ) {
        match change {
            Change::SnowSummary => {
                self.summary = format!("incident {i}: changed in ServiceNow, round {round}");
                snow.update_incident(&self.sys_id, json!({"short_description": self.summary}))
                    .expect("snow update");
            }
            Change::JiraSummary => {
                self.summary = format!("incident {i}: changed in Jira, round {round}");
                jira.edit_issue(&self.key, json!({"summary": self.summary}))
                    .expect("jira edit");
            }
            Change::JiraComment => {
                // The same text in every round: each is a new comment, and
                // each must become a new work note.
                let text = format!("incident {i}: still investigating");
                jira.add_comment(&self.key, &text).expect("jira comment");
                self.comments.push(text);
            }
        }
    }

    /// Both sides agree with what the users last wrote.
    fn agrees(&self, jira: &JiraMock, snow: &ServiceNowMock) -> Result<(), String> {
        let issue = jira.issue(&self.key).ok_or("no issue")?;
        let incident: Incident = snow.incident(&self.sys_id).ok_or("no incident")?;
        let notes: Vec<&str> = incident
            .work_notes
            .iter()
            .map(|n| n.value.as_str())
            .collect();
        let comments: Vec<&str> = issue.comments.iter().map(|c| c.text.as_str()).collect();
        let want: Vec<&str> = self.comments.iter().map(String::as_str).collect();
        if issue.fields["summary"] != self.summary.as_str()
            || incident.field("short_description") != self.summary
            || notes != want
            || comments != want
        {
            return Err(format!(
                "{} / {}: want summary {:?} and notes {want:?}; Jira has {:?} and comments {comments:?}, ServiceNow {:?} and notes {notes:?}",
                self.sys_id,
                self.key,
                self.summary,
                issue.fields["summary"],
                incident.field("short_description"),
            ));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_changes_on_both_sides_travel_once_and_their_echoes_stop() {
    let _turn = intops_tests::serial::beside_others().await;
    let jira = JiraMock::start().await.expect("jira");
    let snow = ServiceNowMock::start().await.expect("servicenow");
    let pipeline = Pipeline::start("echo", &flows(&jira, &snow, "echo"), &[("secret", SECRET)])
        .await
        .expect("pipeline");
    jira.send_webhooks_to(&pipeline.ingest_url("jira"), SECRET);
    snow.send_webhooks_to(&pipeline.ingest_url("servicenow"), SECRET);
    let between = Between {
        prefix: &pipeline.prefix,
        targets: &["echo-jira", "echo-snow"],
        jira: &jira,
        snow: &snow,
    };

    // Every incident opened at once: one issue each.
    let mut conversations: Vec<Conversation> = (0..CONVERSATIONS)
        .map(|i| {
            let summary = format!("incident {i}: opened in ServiceNow");
            let incident = snow
                .create_incident(json!({"short_description": summary, "priority": "1"}))
                .expect("incident");
            Conversation {
                sys_id: incident.sys_id,
                key: String::new(),
                summary,
                comments: Vec::new(),
            }
        })
        .collect();
    wait_quiet(between, QUIET, WAIT).await;
    let issues = jira.issues();
    assert_eq!(issues.len(), CONVERSATIONS, "one issue per incident");
    for c in &mut conversations {
        let issue = issues
            .iter()
            .find(|i| i.fields["summary"] == c.summary.as_str())
            .expect("the incident's issue");
        c.key = issue.key.clone();
    }
    let creates = CONVERSATIONS;

    // Rounds of real changes; each round changes every conversation at
    // once. The fourth changes two fields of each conversation, one on
    // each side, at once.
    let rounds: [&[Change]; 6] = [
        &[Change::SnowSummary],
        &[Change::JiraSummary],
        &[Change::JiraComment],
        &[Change::SnowSummary, Change::JiraComment],
        &[Change::JiraSummary],
        &[Change::SnowSummary],
    ];
    let (mut changes, mut comments) = (0, 0);
    for (round, round_changes) in rounds.iter().enumerate() {
        for (i, c) in conversations.iter_mut().enumerate() {
            for change in *round_changes {
                c.apply(*change, round, i, &jira, &snow);
                changes += 1;
                if matches!(change, Change::JiraComment) {
                    comments += 1;
                }
            }
        }
        wait_quiet(between, QUIET, WAIT).await;
        for c in &conversations {
            if let Err(e) = c.agrees(&jira, &snow) {
                panic!("after round {round}: {e}");
            }
        }
    }
    assert_eq!(changes, CONVERSATIONS * 7);

    // Every real change needs exactly one request to the other side, and
    // a change of the summary may cost one redundant request before its
    // echo stops: the write intops made fires a webhook whose mapped
    // request differs from the last one written in *that* direction. A
    // Jira edit is written to ServiceNow (needed); ServiceNow's webhook
    // about it maps to a PUT of the new summary, which differs from the
    // last PUT and is sent although Jira has it (redundant); Jira's webhook
    // about that PUT maps to the PATCH just written: echo. A create costs
    // the same: the POST, and at most one write-back of the new issue's
    // summary. A comment costs one request: ServiceNow's webhook about the
    // work note maps to the summary PUT last written, an echo at once.
    // So requests ≤ (changes + creates) + (changes - comments + creates),
    // within the issue's "at most one redundant request per real change".
    let jira_requests = jira.requests();
    let snow_requests = snow.requests();
    let total = jira_requests.len() + snow_requests.len();
    let bound = (changes + creates) + (changes - comments + creates);
    assert!(bound <= 2 * (changes + creates));
    assert!(
        total <= bound,
        "{total} requests for {changes} changes ({comments} comments) and {creates} creates (at most {bound}): jira {:?}, servicenow {:?}",
        jira_requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>(),
        snow_requests
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.body))
            .collect::<Vec<_>>(),
    );
    assert!(
        total >= changes + creates,
        "{total} requests cannot carry {changes} changes and {creates} creates"
    );
    let posts = jira_requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, creates, "issues are created once");
    assert!(
        jira_requests
            .iter()
            .chain(&snow_requests)
            .all(|r| r.status / 100 == 2),
        "every request succeeded"
    );
    // Comments are written back once each: no duplicate work note.
    let notes = snow_requests
        .iter()
        .filter(|r| r.json().get("work_notes").is_some())
        .count();
    assert_eq!(notes, comments);

    // The echoes: each real change ends with its own change coming back
    // and not being sent.
    let outcomes = delivery_outcomes(&pipeline.prefix).await;
    let echoes = outcomes
        .iter()
        .filter(|o| o.status == OutcomeStatus::Echo)
        .inspect(|o| assert_eq!(o.link_action, Some(LinkAction::Echo), "{o:?}"))
        .count();
    assert!(
        echoes >= changes,
        "{echoes} echo outcome(s) for {changes} real changes"
    );
    let sent = outcomes
        .iter()
        .filter(|o| o.status == OutcomeStatus::Delivered)
        .count();
    assert_eq!(sent, total, "one delivered outcome per request");
    assert!(
        outcomes
            .iter()
            .all(|o| o.status != OutcomeStatus::DeadLettered),
        "{outcomes:?}"
    );
    // Counted per flow (the flow ids are this scenario's own).
    let counted: f64 = [TO_JIRA, SUMMARY_BACK, COMMENTS_BACK]
        .iter()
        .filter_map(|flow| {
            intops_tests::metrics::sum_in_process(&format!(
                "intops_link_requests_total{{flow=\"{flow}\",action=\"echo\"}}"
            ))
        })
        .sum();
    assert_eq!(
        counted, echoes as f64,
        "intops_link_requests_total{{action=\"echo\"}}"
    );
    pipeline.stop().await.expect("clean stop");
}

/// The same field changed on both sides at once: a conflict. Without the
/// conflict rule the two values swap sides on every turn, forever (each
/// direction's echo rule compares only with its own last write). With it
/// the pipeline goes quiet, both sides hold the newer change (Jira's: its
/// webhook is sent after ServiceNow's), and the echo that would have
/// undone it was skipped as `conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_field_changed_on_both_sides_at_once_settles() {
    let _turn = intops_tests::serial::beside_others().await;
    let jira = JiraMock::start().await.expect("jira");
    let snow = ServiceNowMock::start().await.expect("servicenow");
    let pipeline = Pipeline::start(
        "echoconflict",
        &flows(&jira, &snow, "conflict"),
        &[("secret", SECRET)],
    )
    .await
    .expect("pipeline");
    jira.send_webhooks_to(&pipeline.ingest_url("jira"), SECRET);
    snow.send_webhooks_to(&pipeline.ingest_url("servicenow"), SECRET);
    let between = Between {
        prefix: &pipeline.prefix,
        targets: &["conflict-jira", "conflict-snow"],
        jira: &jira,
        snow: &snow,
    };
    let incident = snow
        .create_incident(json!({"short_description": "opened", "priority": "1"}))
        .expect("incident");
    wait_quiet(between, QUIET, WAIT).await;
    let key = jira.issues()[0].key.clone();
    let before = jira.requests().len() + snow.requests().len();

    snow.update_incident(
        &incident.sys_id,
        json!({"short_description": "from ServiceNow"}),
    )
    .expect("snow update");
    // ServiceNow's change is ingested first; Jira's follows before the
    // pipeline wrote ServiceNow's into Jira (a round trip takes tens of
    // milliseconds), so the two writes cross.
    snow.wait_webhooks(WAIT).await.expect("snow webhook sent");
    jira.edit_issue(&key, json!({"summary": "from Jira"}))
        .expect("jira edit");
    wait_quiet(between, QUIET, Duration::from_secs(30)).await;

    let summary = jira.issue(&key).expect("issue").fields["summary"].clone();
    let description = snow
        .incident(&incident.sys_id)
        .expect("incident")
        .field("short_description")
        .to_string();
    let mut os = delivery_outcomes(&pipeline.prefix).await;
    os.sort_by_key(|o| o.at);
    for o in os {
        println!(
            "outcome {:?} {:?} at {} ingested {:?}",
            o.flow_id,
            o.link_action,
            o.at % 100_000_000,
            o.latency_ms.map(|l| (o.at - l * 1000) % 100_000_000)
        );
    }
    for r in jira.requests().iter().chain(snow.requests().iter()) {
        println!("request {} {}", r.method, r.body);
    }
    for w in jira.webhooks().iter().chain(snow.webhooks().iter()) {
        println!(
            "webhook {} {} {}",
            w.event,
            w.body
                .pointer("/issue/fields/summary")
                .or(w.body.get("short_description"))
                .cloned()
                .unwrap_or_default(),
            w.status.map(|s| s.to_string()).unwrap_or_default()
        );
    }
    assert_eq!(summary, description.as_str(), "both sides agree");
    assert_eq!(description, "from Jira", "the newer change wins");
    // Two real changes: at most two requests each.
    let made = jira.requests().len() + snow.requests().len() - before;
    assert!(made <= 4, "{made} requests for two changes");
    let conflicts: Vec<_> = delivery_outcomes(&pipeline.prefix)
        .await
        .into_iter()
        .filter(|o| o.link_action == Some(LinkAction::Conflict))
        .collect();
    println!("{made} requests; conflicts: {conflicts:?}");
    for o in &conflicts {
        assert_eq!(o.status, OutcomeStatus::Echo, "{o:?}");
        assert!(
            o.error
                .as_deref()
                .is_some_and(|e| e.starts_with("conflict")),
            "{o:?}"
        );
    }
    pipeline.stop().await.expect("clean stop");
}
