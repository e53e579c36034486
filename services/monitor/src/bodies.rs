//! An event's payload and its delivery requests' bodies for the event page
//! and `/api/v1/events/{id}?payload=true`: read from where the lineage
//! index saw them, with the flows file's `redact` fields masked.

use std::collections::HashMap;
use std::time::Duration;

use intops_events::{DeliveryRequest, IntegrationEvent};
use intops_flows::Flows;
use intops_flows::redact::{FieldPath, mask_all};
use intops_kafka::{Message as _, ServiceContext};
use serde::Serialize;
use serde_json::Value;

use crate::lineage::{Location, Trace};

/// Longest body shown, in bytes; the rest is cut with a note.
const MAX_SHOWN: usize = 64 * 1024;
/// How long one record may take to arrive.
const WAIT: Duration = Duration::from_secs(5);

/// The `redact` lists of the flows file, by source and target.
#[derive(Debug, Default, Clone)]
pub(crate) struct Redactions {
    sources: HashMap<String, Vec<FieldPath>>,
    targets: HashMap<String, Vec<FieldPath>>,
}

impl Redactions {
    /// A source's list.
    pub fn of_source(&self, source: &str) -> &[FieldPath] {
        self.sources
            .get(source)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The lists of `flows`.
    pub fn of(flows: &Flows) -> Self {
        Self {
            sources: flows
                .sources
                .values()
                .map(|s| (s.id.clone(), s.redact.clone()))
                .collect(),
            targets: flows
                .targets
                .values()
                .map(|t| (t.id.clone(), t.redact.clone()))
                .collect(),
        }
    }
}

/// Masks the target's answer excerpt of each of `trace`'s dead letters with
/// that target's `redact` list (an answer may echo the request): a JSON
/// excerpt has the fields masked, any other is hidden when the target has
/// fields to mask.
pub(crate) fn mask_excerpts(trace: &mut Trace, redact: &Redactions) {
    for d in &mut trace.dead_letters {
        let paths = d
            .target_id
            .as_deref()
            .and_then(|t| redact.targets.get(t))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if paths.is_empty() {
            continue;
        }
        if let Some(excerpt) = d.response_excerpt.as_mut() {
            *excerpt = match shown(excerpt, paths) {
                Shown::Json(v) => v.to_string(),
                Shown::Text(t) => t,
            };
        }
    }
}

/// A body as shown: JSON with its masked fields, or text.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Shown {
    Json(Value),
    Text(String),
}

impl Shown {
    /// Pretty text for a page.
    pub fn pretty(&self) -> String {
        match self {
            Self::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
            Self::Text(t) => t.clone(),
        }
    }
}

/// `text` with `paths` masked; a body that is not JSON is shown only when
/// nothing is to be masked in it.
pub(crate) fn shown(text: &str, paths: &[FieldPath]) -> Shown {
    match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            mask_all(paths, &mut v);
            Shown::Json(v)
        }
        Err(_) if !paths.is_empty() => {
            Shown::Text("(not JSON: hidden, as its fields are to be masked)".into())
        }
        Err(_) if text.len() > MAX_SHOWN => {
            let mut cut = MAX_SHOWN;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            Shown::Text(format!("{}… ({} bytes in all)", &text[..cut], text.len()))
        }
        Err(_) => Shown::Text(text.to_string()),
    }
}

/// One delivery request as shown.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestShown {
    pub flow_id: String,
    pub target_id: String,
    pub method: String,
    pub path: String,
    pub body: Shown,
}

/// What the event page shows besides the lineage.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Bodies {
    /// The payload as received (masked), when the broker still has it.
    pub payload: Option<Shown>,
    /// Each flow's request to its target (masked).
    pub requests: Vec<RequestShown>,
    /// What could not be read, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Reads `trace`'s payload and requests.
pub(crate) async fn read(ctx: &ServiceContext, trace: &Trace, redact: &Redactions) -> Bodies {
    let mut out = Bodies::default();
    if let Some(at) = &trace.event_at {
        match record::<IntegrationEvent>(ctx, at).await {
            Ok(e) => {
                let paths = redact
                    .sources
                    .get(&e.source_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                out.payload = Some(shown(&e.payload, paths));
            }
            Err(why) => out.missing.push(format!("payload: {why}")),
        }
    }
    for (flow, target, at) in &trace.requests_at {
        match record::<DeliveryRequest>(ctx, at).await {
            Ok(r) => {
                let paths = redact
                    .targets
                    .get(&r.target_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                out.requests.push(RequestShown {
                    flow_id: r.flow_id,
                    target_id: r.target_id,
                    method: r.method,
                    path: r.path,
                    body: shown(&r.body, paths),
                });
            }
            Err(why) => out
                .missing
                .push(format!("request of {flow} to {target}: {why}")),
        }
    }
    out
}

async fn record<T: serde::de::DeserializeOwned>(
    ctx: &ServiceContext,
    at: &Location,
) -> Result<T, String> {
    let message = intops_kafka::fetch::one(&ctx.kafka, &at.topic, at.partition, at.offset, WAIT)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{}/{}@{} is no longer on the broker",
                at.topic, at.partition, at.offset
            )
        })?;
    let bytes = message.payload().ok_or("the record is empty")?;
    ctx.codec
        .decode::<T>(bytes)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masked_fields_never_show_and_text_shows_only_without_masks() {
        let paths = vec![FieldPath::parse(".caller.email").expect("path")];
        let s = shown(
            r#"{"caller": {"email": "ann@example.com", "name": "Ann"}}"#,
            &paths,
        );
        assert!(!s.pretty().contains("ann@example.com"));
        assert!(
            matches!(&s, Shown::Json(v) if v == &json!({"caller": {"email": "***", "name": "Ann"}}))
        );
        assert!(
            !shown("email=ann@example.com", &paths)
                .pretty()
                .contains("ann@")
        );
        assert_eq!(shown("plain", &[]).pretty(), "plain");
        let long = "x".repeat(MAX_SHOWN + 10);
        assert!(
            shown(&long, &[])
                .pretty()
                .ends_with(&format!("({} bytes in all)", MAX_SHOWN + 10))
        );
    }

    #[test]
    fn the_targets_answer_is_masked_like_its_request() {
        let mut trace = Trace::default();
        for excerpt in [r#"{"n": 7, "error": "bad"}"#, "n=7 rejected"] {
            trace.dead_letters.push(crate::lineage::DeadLetterView {
                target_id: Some("crm".into()),
                response_excerpt: Some(excerpt.into()),
                ..crate::lineage::tests::dead_letter_view()
            });
        }
        let mut redact = Redactions::default();
        redact
            .targets
            .insert("crm".into(), vec![FieldPath::parse(".n").expect("path")]);
        mask_excerpts(&mut trace, &redact);
        let shown: Vec<String> = trace
            .dead_letters
            .iter()
            .filter_map(|d| d.response_excerpt.clone())
            .collect();
        assert_eq!(shown[0], r#"{"error":"bad","n":"***"}"#);
        assert!(!shown[1].contains("n=7"), "{}", shown[1]);
    }

    #[test]
    fn a_redacted_field_is_no_search_term() {
        let flows = intops_flows::load_str(
            "[[sources]]\nid = \"app\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\nredact = [\".secret\"]\n",
        )
        .expect("flows");
        let mut l = crate::lineage::Lineage::new(10);
        l.set_redactions(Redactions::of(&flows));
        let mut e = crate::lineage::tests::event("e1", 1);
        e.source_id = "app".into();
        e.payload = r#"{"secret": "XYZ-123", "number": "INC1"}"#.into();
        l.on_event(&e);
        assert!(
            l.search("xyz-123").is_empty(),
            "a hidden value is not found"
        );
        assert_eq!(l.search("inc1").len(), 1);
    }
}
