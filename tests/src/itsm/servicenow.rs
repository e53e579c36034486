//! A ServiceNow-shaped system: incidents in the Table API, work notes and
//! comments as journals, a request log and a business-rule webhook (the
//! incident's fields, `event_type` created or updated) for every write.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/now/table/incident` `{fields}` | 201 `{"result": record}`; sys_id and number assigned unless given |
//! | `PATCH` or `PUT /api/now/table/incident/{sys_id}` `{fields}` | 200 `{"result": record}` (fields merged, `work_notes`/`comments` appended); 404 unknown |
//! | `GET /api/now/table/incident/{sys_id}` | 200 `{"result": record}` |
//!
//! In answers, `work_notes` and `comments` hold the whole journal, newest
//! first, as ServiceNow shows it with `sysparm_display_value=true`; in a
//! webhook they hold the entry this write added (as a business rule sees
//! `current.work_notes`), else "".

use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::recorder::{Recorder, StateFile, actor, json, snow_now};
use super::webhook::Webhooks;
use crate::target::Captured;

/// The user of HTTP writes, unless `X-Mock-User` names another.
const API_USER: &str = "rest.api";

/// Fields a write cannot set: the system's own (and `event_type`, which is
/// the webhook's, not the record's).
const READ_ONLY: [&str; 7] = [
    "sys_id",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    "event_type",
];

/// Journal fields: a write appends an entry.
const JOURNALS: [(&str, &str); 2] = [
    ("work_notes", "Work notes"),
    ("comments", "Additional comments"),
];

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The record's id.
    pub sys_id: String,
    /// Every other field as last written (`number`, `priority`, the
    /// `sys_*` fields...), journals excepted.
    pub fields: Map<String, Value>,
    /// Work notes, oldest first.
    pub work_notes: Vec<JournalEntry>,
    /// Additional comments, oldest first.
    pub comments: Vec<JournalEntry>,
}

impl Incident {
    /// A field's text ("" when absent or not a string).
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The text.
    pub value: String,
    /// When (`2026-11-28 08:40:00`).
    pub created_on: String,
    /// Who wrote it.
    pub created_by: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    last_number: u64,
    incidents: Vec<Incident>,
}

/// A refused write: status and ServiceNow's error body.
pub(crate) struct Refusal(u16, Value);

fn refusal(status: u16, message: &str, detail: &str) -> Refusal {
    Refusal(
        status,
        json!({"error": {"message": message, "detail": detail}, "status": "failure"}),
    )
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceNow answered {}: {}", self.0, self.1)
    }
}

fn not_found() -> Refusal {
    refusal(
        404,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )
}

/// The ServiceNow system behind [`super::ServiceNowMock`].
#[derive(Debug)]
pub(crate) struct ServiceNow {
    pub(crate) recorder: Recorder,
    pub(crate) webhooks: Webhooks,
    data: Mutex<Data>,
    state: StateFile,
}

impl ServiceNow {
    pub(crate) fn new(log: bool, state: StateFile) -> anyhow::Result<Self> {
        let data = state.load()?;
        Ok(Self {
            recorder: Recorder::new("servicenow", log),
            webhooks: Webhooks::new("servicenow", log),
            data: Mutex::new(data),
            state,
        })
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn incident(&self, sys_id: &str) -> Option<Incident> {
        self.data()
            .incidents
            .iter()
            .find(|i| i.sys_id == sys_id)
            .cloned()
    }

    pub(crate) fn incidents(&self) -> Vec<Incident> {
        self.data().incidents.clone()
    }

    pub(crate) fn create(&self, body: &Value, by: &str) -> Result<Incident, Refusal> {
        let Some(given) = body.as_object() else {
            return Err(refusal(
                400,
                "Exception while reading request",
                "the body must be a JSON object",
            ));
        };
        let mut data = self.data();
        let sys_id = match given.get("sys_id").and_then(Value::as_str) {
            Some(id) if data.incidents.iter().any(|i| i.sys_id == id) => {
                return Err(refusal(
                    403,
                    "Operation Failed",
                    "Error during insert of incident: duplicate sys_id",
                ));
            }
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("{:032x}", rand::random::<u128>()),
        };
        let number = match given.get("number").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                data.last_number = data.last_number.max(10100) + 1;
                format!("INC{:07}", data.last_number)
            }
        };
        let now = snow_now();
        let mut incident = Incident {
            sys_id: sys_id.clone(),
            fields: Map::new(),
            work_notes: Vec::new(),
            comments: Vec::new(),
        };
        incident.fields.insert("number".into(), json!(number));
        incident.fields.insert("state".into(), json!("1"));
        incident.fields.insert("sys_created_on".into(), json!(now));
        incident.fields.insert("sys_created_by".into(), json!(by));
        incident.fields.insert("sys_mod_count".into(), json!("-1"));
        let added = apply(&mut incident, given, by);
        data.incidents.push(incident.clone());
        self.emit("created", &incident, &added);
        self.state.save(&*data);
        Ok(incident)
    }

    pub(crate) fn update(&self, sys_id: &str, body: &Value, by: &str) -> Result<Incident, Refusal> {
        let Some(given) = body.as_object() else {
            return Err(refusal(
                400,
                "Exception while reading request",
                "the body must be a JSON object",
            ));
        };
        let mut data = self.data();
        let Some(incident) = data.incidents.iter_mut().find(|i| i.sys_id == sys_id) else {
            return Err(not_found());
        };
        let mut given = given.clone();
        given.remove("number");
        let added = apply(incident, &given, by);
        let incident = incident.clone();
        self.emit("updated", &incident, &added);
        self.state.save(&*data);
        Ok(incident)
    }

    fn emit(&self, event_type: &str, incident: &Incident, added: &Map<String, Value>) {
        let mut body = record(incident);
        for (field, _) in JOURNALS {
            body.insert(field.into(), added.get(field).cloned().unwrap_or(json!("")));
        }
        body.insert("event_type".into(), json!(event_type));
        self.webhooks
            .emit(event_type, &incident.sys_id, Value::Object(body));
    }

    /// Answers one HTTP request under `/api/now/`.
    pub(crate) async fn handle(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let request = Recorder::capture(&method, &uri, &headers, &body);
        let Some(rest) = uri.path().strip_prefix("/api/now/table/incident") else {
            return self.refuse(
                request,
                &refusal(400, "Invalid table", "only the incident table exists here"),
            );
        };
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let write = method != Method::GET;
        if write && let Some(status) = self.recorder.take_failure() {
            return self.refuse(request, &refusal(status, "injected failure", ""));
        }
        let parsed: Value = if write {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return self.refuse(
                        request,
                        &refusal(400, "Exception while reading request", &e.to_string()),
                    );
                }
            }
        } else {
            Value::Null
        };
        let by = actor(&headers, API_USER);
        let outcome = match (method.as_str(), parts.as_slice()) {
            ("POST", []) => self.create(&parsed, &by).map(|i| (201, i, "created")),
            ("PATCH" | "PUT", [sys_id]) => self
                .update(sys_id, &parsed, &by)
                .map(|i| (200, i, "updated")),
            ("GET", [sys_id]) => self
                .incident(sys_id)
                .ok_or_else(not_found)
                .map(|i| (200, i, "")),
            _ => Err(refusal(
                400,
                "Requested URI does not represent any resource",
                "",
            )),
        };
        match outcome {
            Err(r) => self.refuse(request, &r),
            Ok((status, incident, verb)) => {
                let note = if verb.is_empty() {
                    String::new()
                } else {
                    format!("{verb} {} ({})", incident.field("number"), incident.sys_id)
                };
                let request = self.recorder.record(request, status, &note);
                if write && let Some(slot) = self.recorder.take_hold() {
                    slot.hold(request).await;
                }
                json(status, &json!({"result": record(&incident)}))
            }
        }
    }

    fn refuse(&self, request: Captured, r: &Refusal) -> Response {
        self.recorder.record(request, r.0, &r.1.to_string());
        json(r.0, &r.1)
    }
}

/// Applies a write; returns the journal entries it added (field → text).
fn apply(incident: &mut Incident, given: &Map<String, Value>, by: &str) -> Map<String, Value> {
    let now = snow_now();
    let mut added = Map::new();
    for (name, value) in given {
        if READ_ONLY.contains(&name.as_str()) {
            continue;
        }
        if let Some((field, _)) = JOURNALS.iter().find(|(f, _)| f == name) {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), String::from);
            if value.is_null() || text.is_empty() {
                continue;
            }
            let entry = JournalEntry {
                value: text.clone(),
                created_on: now.clone(),
                created_by: by.to_string(),
            };
            match *field {
                "work_notes" => incident.work_notes.push(entry),
                _ => incident.comments.push(entry),
            }
            added.insert((*field).to_string(), json!(text));
            continue;
        }
        incident.fields.insert(name.clone(), value.clone());
    }
    let count = incident
        .fields
        .get("sys_mod_count")
        .and_then(Value::as_str)
        .and_then(|c| c.parse::<i64>().ok())
        .unwrap_or(-1);
    incident
        .fields
        .insert("sys_mod_count".into(), json!((count + 1).to_string()));
    incident.fields.insert("sys_updated_on".into(), json!(now));
    incident.fields.insert("sys_updated_by".into(), json!(by));
    added
}

/// The record as the Table API answers it.
fn record(incident: &Incident) -> Map<String, Value> {
    let mut out = incident.fields.clone();
    out.insert("sys_id".into(), json!(incident.sys_id));
    for (field, label) in JOURNALS {
        let entries = match field {
            "work_notes" => &incident.work_notes,
            _ => &incident.comments,
        };
        let text: String = entries
            .iter()
            .rev()
            .map(|e| {
                format!(
                    "{} - {} ({label})\n{}\n\n",
                    e.created_on, e.created_by, e.value
                )
            })
            .collect();
        out.insert(field.into(), json!(text));
    }
    out
}
