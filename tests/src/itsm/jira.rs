//! A Jira-shaped system: issues with keys (`OPS-1`), edits, comments, a
//! request log and a Jira Cloud webhook for every write.
//!
//! | request | answer |
//! |---|---|
//! | `POST /rest/api/3/issue` `{"fields": {...}}` | 201 `{"id", "key", "self"}`; 400 without `fields.summary` |
//! | `PUT /rest/api/3/issue/{key or id}` `{"fields": {...}}` | 204 (fields replaced one by one); 404 unknown |
//! | `POST /rest/api/3/issue/{key}/comment` `{"body": ADF or text}` | 201 `{"id", "self", "author", "body", "created", "updated"}` |
//! | `GET /rest/api/3/issue/{key}` | 200 the issue, its comments under `fields.comment` |

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::recorder::{Recorder, StateFile, actor, empty, epoch_millis, jira_now, json};
use super::webhook::Webhooks;
use crate::target::Captured;

/// The API user that writes over HTTP, unless `X-Mock-User` names another.
const API_USER: &str = "REST API user";

/// One issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// Numeric id (`10001`).
    pub id: String,
    /// Key (`OPS-1`).
    pub key: String,
    /// Fields as last written (plus `status`, `created`, `updated`).
    pub fields: Map<String, Value>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
}

/// One comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Numeric id.
    pub id: String,
    /// The body as written (an ADF document or text).
    pub body: Value,
    /// The body's text (ADF text nodes joined), as webhooks carry it.
    pub text: String,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    last_issue_id: u64,
    last_comment_id: u64,
    /// Last issue number per project key.
    counters: BTreeMap<String, u64>,
    issues: Vec<Issue>,
    /// Answers by Idempotency-Key (only kept while honouring them).
    answers: BTreeMap<String, (u16, Value)>,
}

/// A refused write: status and Jira's error body.
pub(crate) struct Refusal(u16, Value);

fn refusal(status: u16, message: &str) -> Refusal {
    Refusal(status, json!({"errorMessages": [message], "errors": {}}))
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jira answered {}: {}", self.0, self.1)
    }
}

fn not_found() -> Refusal {
    refusal(
        404,
        "Issue does not exist or you do not have permission to see it.",
    )
}

/// The Jira system behind [`super::JiraMock`].
#[derive(Debug)]
pub(crate) struct Jira {
    pub(crate) recorder: Recorder,
    pub(crate) webhooks: Webhooks,
    data: Mutex<Data>,
    state: StateFile,
    base: String,
    pub(crate) honour_idempotency: AtomicBool,
}

impl Jira {
    pub(crate) fn new(base: String, log: bool, state: StateFile) -> anyhow::Result<Self> {
        let data = state.load()?;
        Ok(Self {
            recorder: Recorder::new("jira", log),
            webhooks: Webhooks::new("jira", log),
            data: Mutex::new(data),
            state,
            base,
            honour_idempotency: AtomicBool::new(false),
        })
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn issue(&self, key: &str) -> Option<Issue> {
        self.data()
            .issues
            .iter()
            .find(|i| i.key == key || i.id == key)
            .cloned()
    }

    pub(crate) fn issues(&self) -> Vec<Issue> {
        self.data().issues.clone()
    }

    fn issue_self(&self, id: &str) -> String {
        format!("{}/rest/api/3/issue/{id}", self.base)
    }

    fn webhook_issue(&self, issue: &Issue) -> Value {
        json!({
            "id": issue.id,
            "key": issue.key,
            "self": self.issue_self(&issue.id),
            "fields": issue.fields,
        })
    }

    fn comment_json(&self, issue: &Issue, c: &Comment, body: Value) -> Value {
        json!({
            "self": format!("{}/comment/{}", self.issue_self(&issue.id), c.id),
            "id": c.id,
            "author": user(&c.author),
            "body": body,
            "updateAuthor": user(&c.author),
            "created": c.created,
            "updated": c.created,
            "jsdPublic": true,
        })
    }

    /// The Idempotency-Key's earlier answer, when honouring them.
    fn replayed(&self, key: Option<&str>) -> Option<(u16, Value)> {
        let key = key?;
        if !self.honour_idempotency.load(Ordering::SeqCst) {
            return None;
        }
        self.data().answers.get(key).cloned()
    }

    fn remember(&self, data: &mut Data, key: Option<&str>, answer: &(u16, Value)) {
        if let Some(key) = key
            && self.honour_idempotency.load(Ordering::SeqCst)
        {
            data.answers.insert(key.to_string(), answer.clone());
        }
    }

    pub(crate) fn create(
        &self,
        body: &Value,
        by: &str,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value, bool), Refusal> {
        if let Some((status, answer)) = self.replayed(idempotency_key) {
            return Ok((status, answer, true));
        }
        let Some(given) = body.get("fields").and_then(Value::as_object) else {
            return Err(refusal(400, "the body needs a fields object"));
        };
        if given
            .get("summary")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(Refusal(
                400,
                json!({"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}),
            ));
        }
        let project = given
            .get("project")
            .and_then(|p| p.get("key"))
            .and_then(Value::as_str)
            .unwrap_or("OPS")
            .to_string();
        let mut data = self.data();
        data.last_issue_id = data.last_issue_id.max(10000) + 1;
        let number = data.counters.entry(project.clone()).or_insert(0);
        *number += 1;
        let key = format!("{project}-{number}");
        let now = jira_now();
        let mut fields = given.clone();
        fields
            .entry("status")
            .or_insert_with(|| json!({"name": "To Do"}));
        fields.insert("created".into(), json!(now));
        fields.insert("updated".into(), json!(now));
        let issue = Issue {
            id: data.last_issue_id.to_string(),
            key: key.clone(),
            fields,
            comments: Vec::new(),
        };
        let answer = (
            201,
            json!({"id": issue.id, "key": key, "self": self.issue_self(&issue.id)}),
        );
        self.webhooks.emit(
            "jira:issue_created",
            &key,
            json!({
                "timestamp": epoch_millis(),
                "webhookEvent": "jira:issue_created",
                "issue_event_type_name": "issue_created",
                "user": user(by),
                "issue": self.webhook_issue(&issue),
            }),
        );
        data.issues.push(issue);
        self.remember(&mut data, idempotency_key, &answer);
        self.state.save(&*data);
        Ok((answer.0, answer.1, false))
    }

    pub(crate) fn edit(&self, key: &str, body: &Value, by: &str) -> Result<(), Refusal> {
        let Some(body) = body.as_object() else {
            return Err(refusal(400, "the body must be a JSON object"));
        };
        let given = body
            .get("fields")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut data = self.data();
        let Some(at) = data.issues.iter().position(|i| i.key == key || i.id == key) else {
            return Err(not_found());
        };
        let mut items = Vec::new();
        let issue = &mut data.issues[at];
        for (name, value) in given {
            let before = issue.fields.get(&name).cloned().unwrap_or(Value::Null);
            if before != value {
                items.push(json!({
                    "field": name, "fieldtype": "jira",
                    "fromString": display(&before), "toString": display(&value),
                }));
            }
            issue.fields.insert(name, value);
        }
        issue.fields.insert("updated".into(), json!(jira_now()));
        let issue = issue.clone();
        self.webhooks.emit(
            "jira:issue_updated",
            &issue.key,
            json!({
                "timestamp": epoch_millis(),
                "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": "issue_generic",
                "user": user(by),
                "issue": self.webhook_issue(&issue),
                "changelog": {"id": epoch_millis().to_string(), "items": items},
            }),
        );
        self.state.save(&*data);
        Ok(())
    }

    pub(crate) fn comment(
        &self,
        key: &str,
        body: &Value,
        by: &str,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value, Comment), Refusal> {
        let Some(given) = body.get("body").filter(|b| b.is_string() || b.is_object()) else {
            return Err(refusal(400, "Comment body can not be empty!"));
        };
        if let Some((status, answer)) = self.replayed(idempotency_key) {
            let same = self
                .issue(key)
                .and_then(|i| i.comments.into_iter().find(|c| answer["id"] == c.id));
            if let Some(c) = same {
                return Ok((status, answer, c));
            }
        }
        let mut data = self.data();
        let Some(at) = data.issues.iter().position(|i| i.key == key || i.id == key) else {
            return Err(not_found());
        };
        data.last_comment_id = data.last_comment_id.max(10100) + 1;
        let id = data.last_comment_id.to_string();
        let now = jira_now();
        let comment = Comment {
            id,
            body: given.clone(),
            text: text_of(given),
            author: by.to_string(),
            created: now.clone(),
        };
        let issue = &mut data.issues[at];
        issue.comments.push(comment.clone());
        issue.fields.insert("updated".into(), json!(now));
        let issue = issue.clone();
        let answer = self.comment_json(&issue, &comment, given.clone());
        self.webhooks.emit(
            "comment_created",
            &issue.key,
            json!({
                "timestamp": epoch_millis(),
                "webhookEvent": "comment_created",
                "issue_event_type_name": "issue_commented",
                "comment": self.comment_json(&issue, &comment, json!(comment.text)),
                "issue": self.webhook_issue(&issue),
            }),
        );
        self.remember(&mut data, idempotency_key, &(201, answer.clone()));
        self.state.save(&*data);
        Ok((201, answer, comment))
    }

    fn get(&self, key: &str) -> Result<Value, Refusal> {
        let issue = self.issue(key).ok_or_else(not_found)?;
        let comments: Vec<Value> = issue
            .comments
            .iter()
            .map(|c| self.comment_json(&issue, c, c.body.clone()))
            .collect();
        let mut fields = issue.fields.clone();
        fields.insert(
            "comment".into(),
            json!({"comments": comments, "maxResults": comments.len(), "total": comments.len(), "startAt": 0}),
        );
        Ok(
            json!({"id": issue.id, "key": issue.key, "self": self.issue_self(&issue.id), "fields": fields}),
        )
    }

    /// Answers one HTTP request under `/rest/api/3/`.
    pub(crate) async fn handle(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let request = Recorder::capture(&method, &uri, &headers, &body);
        let Some(rest) = uri.path().strip_prefix("/rest/api/3/issue") else {
            return self.refuse(request, &refusal(404, "no such resource"));
        };
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let write = method != Method::GET;
        if write && let Some(status) = self.recorder.take_failure() {
            return self.refuse(request, &refusal(status, "injected failure"));
        }
        let parsed: Value = if write {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return self.refuse(request, &refusal(400, &format!("not JSON: {e}"))),
            }
        } else {
            Value::Null
        };
        let by = actor(&headers, API_USER);
        let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        let outcome = match (method.as_str(), parts.as_slice()) {
            ("POST", []) => {
                self.create(&parsed, &by, idempotency_key)
                    .map(|(status, answer, replayed)| {
                        let key = answer["key"].as_str().unwrap_or_default().to_string();
                        let note = if replayed {
                            format!("same Idempotency-Key: answered {key} again")
                        } else {
                            format!("created {key}")
                        };
                        (status, Some(answer), note)
                    })
            }
            ("PUT", [key]) => self
                .edit(key, &parsed, &by)
                .map(|()| (204, None, format!("updated {key}"))),
            ("POST", [key, "comment"]) => self
                .comment(key, &parsed, &by, idempotency_key)
                .map(|(s, a, c)| (s, Some(a), format!("commented {key}: {}", c.text))),
            ("GET", [key]) => self.get(key).map(|v| (200, Some(v), String::new())),
            _ => Err(refusal(404, "no such resource")),
        };
        match outcome {
            Err(r) => self.refuse(request, &r),
            Ok((status, answer, note)) => {
                let request = self.recorder.record(request, status, &note);
                if method == Method::POST
                    && parts.is_empty()
                    && let Some(slot) = self.recorder.take_hold()
                {
                    slot.hold(request).await;
                }
                match answer {
                    Some(a) => json(status, &a),
                    None => empty(status),
                }
            }
        }
    }

    fn refuse(&self, request: Captured, r: &Refusal) -> Response {
        self.recorder.record(request, r.0, &r.1.to_string());
        json(r.0, &r.1)
    }
}

fn user(name: &str) -> Value {
    let account: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    json!({"accountId": format!("mock-{account}"), "displayName": name, "active": true})
}

/// A field value as a changelog's `fromString`/`toString`.
fn display(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => json!(s),
        Value::Object(o) => o
            .get("name")
            .or_else(|| o.get("key"))
            .or_else(|| o.get("value"))
            .map_or_else(|| json!(v.to_string()), display),
        Value::Array(a) => json!(
            a.iter()
                .map(|x| display(x)
                    .as_str()
                    .map_or_else(|| x.to_string(), String::from))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => json!(other.to_string()),
    }
}

/// The text of a comment body: a string as is, an ADF document's text
/// nodes joined (paragraphs by newlines).
pub(crate) fn text_of(body: &Value) -> String {
    fn walk(node: &Value, out: &mut String) {
        if let Some(t) = node.get("text").and_then(Value::as_str) {
            out.push_str(t);
        }
        if node.get("type").and_then(Value::as_str) == Some("hardBreak") {
            out.push('\n');
        }
        if let Some(children) = node.get("content").and_then(Value::as_array) {
            for (i, child) in children.iter().enumerate() {
                let block = child.get("type").and_then(Value::as_str) == Some("paragraph");
                if block && i > 0 {
                    out.push('\n');
                }
                walk(child, out);
            }
        }
    }
    match body {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            walk(other, &mut out);
            out
        }
    }
}
