//! `intops flows test` case files: an input payload for a source and what
//! each flow must make of it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One case file (TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows (printed on failure).
    pub description: Option<String>,
    /// The source the payload comes from.
    pub source: String,
    /// The payload as JSON text.
    pub payload: Option<String>,
    /// A JSON file holding the payload, relative to the case file.
    pub payload_file: Option<PathBuf>,
    /// The value `$link` takes for flows with links (what delivery would
    /// find in the links). Without it, the expected requests show the text
    /// `$link` where the link goes.
    pub link: Option<String>,
    /// What the flows must produce; a flow of the source that is not listed
    /// must not route the event.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

/// What one flow must make of the payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The flow.
    pub flow: String,
    /// `false`: the flow must not route the event. Default true.
    pub routed: Option<bool>,
    /// Expected HTTP method, when checked.
    pub method: Option<String>,
    /// Expected path, when checked.
    pub path: Option<String>,
    /// Expected body as a TOML value (tables, arrays, strings, numbers).
    pub body: Option<toml::Value>,
    /// Expected body as JSON text (for bodies with nulls).
    pub body_json: Option<String>,
    /// The flow must fail on this payload with an error containing this.
    pub error: Option<String>,
    /// A capture flow's update, sent instead once the link exists.
    pub update: Option<ExpectUpdate>,
}

/// What a capture flow's update must be (`[expect.update]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectUpdate {
    /// Expected HTTP method, when checked.
    pub method: Option<String>,
    /// Expected path, when checked.
    pub path: Option<String>,
    /// Expected body as a TOML value.
    pub body: Option<toml::Value>,
    /// Expected body as JSON text.
    pub body_json: Option<String>,
}

impl Case {
    /// Reads a case file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        toml::from_str(&text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The payload text, from `payload` or `payload_file`.
    pub fn payload_text(&self, case_path: &Path) -> Result<String, String> {
        match (&self.payload, &self.payload_file) {
            (Some(text), None) => Ok(text.clone()),
            (None, Some(file)) => {
                let full = case_path.parent().unwrap_or(Path::new(".")).join(file);
                std::fs::read_to_string(&full)
                    .map_err(|e| format!("cannot read payload_file {}: {e}", full.display()))
            }
            _ => Err("set exactly one of payload and payload_file".into()),
        }
    }
}

impl Expect {
    /// The expected body as JSON, if one is given.
    pub fn body(&self) -> Result<Option<serde_json::Value>, String> {
        body(self.body.as_ref(), self.body_json.as_deref())
    }
}

impl ExpectUpdate {
    /// The expected body as JSON, if one is given.
    pub fn body(&self) -> Result<Option<serde_json::Value>, String> {
        body(self.body.as_ref(), self.body_json.as_deref())
    }
}

/// An expected body from `body` or `body_json`.
fn body(
    value: Option<&toml::Value>,
    json: Option<&str>,
) -> Result<Option<serde_json::Value>, String> {
    match (value, json) {
        (Some(v), None) => serde_json::to_value(v).map(Some).map_err(|e| e.to_string()),
        (None, Some(text)) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("body_json: {e}")),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err("set body or body_json, not both".into()),
    }
}
