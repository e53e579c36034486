//! Consumer lag of every intops group: the committed offset against the
//! high watermark, per partition, summed per topic. Read with OffsetFetch
//! and ListOffsets (the local broker drops DescribeGroups), without
//! joining the groups.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use intops_kafka::{KafkaSettings, drain};
use intops_runtime::CancellationToken;
use intops_runtime::metrics as m;
use rdkafka::consumer::BaseConsumer;

use crate::health::Health;

/// One group's position on one topic.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    /// The consumer group.
    pub group: String,
    /// The topic it consumes.
    pub topic: String,
    /// The target whose delivery group this is, if one.
    pub target: Option<String>,
}

/// Measures every `watched` group every `every` until `shutdown`, into
/// `health` and the lag gauge.
pub(crate) async fn run(
    kafka: KafkaSettings,
    watched: Vec<Watched>,
    health: Arc<RwLock<Health>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut clients: HashMap<String, Arc<BaseConsumer>> = HashMap::new();
    loop {
        for w in &watched {
            let consumer = match clients.get(&w.group) {
                Some(c) => c.clone(),
                // Reads offsets only, never joins: no static membership.
                None => match without_instance_id(kafka.consumer_config(&w.group))
                    .create::<BaseConsumer>()
                {
                    Ok(c) => clients
                        .entry(w.group.clone())
                        .or_insert(Arc::new(c))
                        .clone(),
                    Err(e) => {
                        tracing::warn!(group = %w.group, error = %e, "cannot create lag reader");
                        continue;
                    }
                },
            };
            let topic = w.topic.clone();
            let measured = intops_kafka::blocking(move || drain::lag(&consumer, &topic)).await;
            match measured {
                Ok(lag) => {
                    metrics::gauge!(m::CONSUMER_LAG, "group" => w.group.clone(), "topic" => w.topic.clone())
                        .set(lag as f64);
                    if let (Some(target), Ok(mut h)) = (&w.target, health.write()) {
                        h.set_lag(target, lag);
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %w.group, topic = %w.topic, error = %e, "cannot read consumer lag")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn without_instance_id(mut config: rdkafka::ClientConfig) -> rdkafka::ClientConfig {
    config.remove("group.instance.id");
    config
}
