//! Reads what the checker needs from a broker's topics and from the
//! target, decoding records with the registry's schemas.

use std::collections::HashMap;
use std::time::Duration;

use intops_events::{Codec, DeadLetter, DeliveryRequest, IntegrationEvent, Outcome, Topics};
use rdkafka::message::{Message, OwnedMessage};

use super::checker::{Answered, DeadLetterSeen, Input, OutcomeSeen};
use crate::{MockTarget, topic};

const READ: Duration = Duration::from_secs(60);

/// Every record of `name` on the broker at `bootstrap`.
fn all(bootstrap: &str, name: &str) -> Vec<OwnedMessage> {
    let n = topic::count_at(bootstrap, name).max(0) as usize;
    if n == 0 {
        return Vec::new();
    }
    let name = name.to_string();
    topic::read_from(bootstrap, &name, n, READ)
}

async fn decode<T: serde::de::DeserializeOwned>(codec: &Codec, m: &OwnedMessage, what: &str) -> T {
    let bytes = m
        .payload()
        .unwrap_or_else(|| panic!("{what} at {}:{} has no value", m.partition(), m.offset()));
    codec.decode(bytes).await.unwrap_or_else(|e| {
        panic!(
            "{what} at {}:{} does not decode: {e}",
            m.partition(),
            m.offset()
        )
    })
}

/// Fills `input`'s records from the topics under `topics` (target
/// `target_id`) and from `target`'s captured requests (timed from
/// `started`).
pub async fn records(
    input: &mut Input,
    bootstrap: &str,
    topics: &Topics,
    target_id: &str,
    target: &MockTarget,
    started: std::time::Instant,
) {
    let codec = crate::stack::codec();
    let read = |name: String| {
        let bootstrap = bootstrap.to_string();
        tokio::task::spawn_blocking(move || all(&bootstrap, &name))
    };
    let events_topic = topics.events();
    let (events, requests, outcomes, dlq_t, dlq_d) = tokio::join!(
        read(events_topic.clone()),
        read(topics.deliveries(target_id)),
        read(topics.outcomes()),
        read(topics.dlq_transform()),
        read(topics.dlq_delivery()),
    );
    let mut at: HashMap<(i32, i64), String> = HashMap::new();
    for m in events.expect("events read") {
        let e: IntegrationEvent = decode(&codec, &m, "event").await;
        at.insert((m.partition(), m.offset()), e.event_id.clone());
        input.events.push(e.event_id);
    }
    for m in requests.expect("requests read") {
        let r: DeliveryRequest = decode(&codec, &m, "delivery request").await;
        input.requests.push(r.event_id);
    }
    for m in outcomes.expect("outcomes read") {
        let o: Outcome = decode(&codec, &m, "outcome").await;
        input.outcomes.push(OutcomeSeen {
            event_id: o.event_id,
            stage: o.stage,
            status: o.status,
        });
    }
    for m in dlq_t
        .expect("dead letters read")
        .into_iter()
        .chain(dlq_d.expect("dead letters read"))
    {
        let d: DeadLetter = decode(&codec, &m, "dead letter").await;
        // A slim dead letter may reference its event instead of naming it.
        let event_id = d
            .event_id
            .clone()
            .or_else(|| {
                (d.original_topic == events_topic)
                    .then(|| at.get(&(d.original_partition, d.original_offset)).cloned())
                    .flatten()
            })
            .unwrap_or_else(|| {
                format!("<unknown: {}:{}>", d.original_partition, d.original_offset)
            });
        input.dead_letters.push(DeadLetterSeen {
            event_id,
            stage: d.stage,
            class: d.error_class,
        });
    }
    input.target = target
        .requests()
        .iter()
        .map(|r| Answered {
            key: r.header("idempotency-key").unwrap_or_default().to_string(),
            status: r.status,
            at_secs: r.at.saturating_duration_since(started).as_secs_f64(),
        })
        .collect();
}
