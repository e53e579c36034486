//! What every service connects to at start-up: Kafka settings from the
//! common settings, the registry codec, one producer, and its topics.

use std::sync::Arc;
use std::time::Duration;

use intops_events::{Codec, RecordKind, RegistrySettings, Topics};
use intops_runtime::{ConnectArgs, Readiness};
use serde::Serialize;

use crate::plan::TopicPlan;
use crate::topics::{self, TopicSpec};
use crate::{KafkaError, KafkaSettings, Producer, Record};

/// Connections shared by a service's tasks.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// Kafka client settings.
    pub kafka: KafkaSettings,
    /// Confluent-framed Avro codec.
    pub codec: Arc<Codec>,
    /// The service's one producer.
    pub producer: Producer,
    /// Topic names under the configured prefix.
    pub topics: Topics,
    /// How missing topics are created.
    pub plan: TopicPlan,
}

impl ServiceContext {
    /// Builds clients from `common` and the process environment's
    /// pass-through Kafka options. Nothing is contacted yet.
    pub fn new(connect: &ConnectArgs) -> Result<Self, KafkaError> {
        let kafka = KafkaSettings::from_env(&connect.kafka_bootstrap, std::env::vars())?
            .with_instance_id(connect.instance_id.clone())?;
        let registry = RegistrySettings {
            url: connect.schema_registry_url.clone(),
            basic_auth: connect.schema_registry_username.clone().map(|u| {
                (
                    u,
                    connect
                        .schema_registry_password
                        .as_ref()
                        .map(|p| p.expose().to_string())
                        .unwrap_or_default(),
                )
            }),
            timeout: Duration::from_secs(10),
            ca_pem: connect
                .schema_registry_ca
                .as_ref()
                .map(|path| {
                    std::fs::read(path).map_err(|e| {
                        KafkaError::Config(format!(
                            "cannot read the registry CA file {}: {e}",
                            path.display()
                        ))
                    })
                })
                .transpose()?,
        };
        let codec = Arc::new(Codec::new(&registry)?);
        let producer = Producer::new(&kafka)?;
        Ok(Self {
            kafka,
            codec,
            producer,
            topics: Topics::new(&connect.topic_prefix),
            plan: TopicPlan::new(
                Topics::new(&connect.topic_prefix),
                connect.topic_partitions,
                connect.topic_replication,
            ),
        })
    }

    /// Replaces the producer with one whose sends fail after `timeout`
    /// (see [`Producer::with_delivery_timeout`]).
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Result<Self, KafkaError> {
        self.producer = Producer::with_delivery_timeout(&self.kafka, timeout)?;
        Ok(self)
    }

    /// Keeps readiness check `kafka` true while a broker answers, checking
    /// every `every`, until `shutdown`: a task for the service's supervisor.
    pub fn watch_broker(
        &self,
        readiness: Readiness,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let producer = self.producer.clone();
        readiness.register("kafka");
        async move {
            loop {
                let up = producer.broker_reachable(every).await;
                readiness.set("kafka", up);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        }
    }

    /// Reports readiness check `partitions <group>` false while `consumer`
    /// (a member of `group`) has held no partition for longer than `grace`
    /// and the group has records left (see [`crate::drain::starved`]),
    /// until `shutdown`: a task for the service's supervisor.
    pub fn watch_assignment(
        &self,
        consumer: &crate::GroupConsumer,
        group: &str,
        readiness: &Readiness,
        grace: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static, KafkaError> {
        crate::drain::watch(
            consumer,
            &self.kafka,
            group,
            readiness.clone(),
            grace,
            shutdown,
        )
    }

    /// Creates whichever of `names` do not exist yet, with the configured
    /// partitions and replication and the plan's cleanup policy.
    pub async fn ensure_topics(&self, names: &[String]) -> Result<(), KafkaError> {
        let specs: Vec<TopicSpec> = names.iter().map(|n| self.plan.spec(n)).collect();
        topics::ensure(&self.kafka, &specs).await
    }

    /// Creates every topic of a deployment with these targets (see
    /// [`Topics::all`]), reporting not ready (`kafka_topics`) until done.
    pub async fn ensure_pipeline_topics<'a>(
        &self,
        target_ids: impl IntoIterator<Item = &'a str>,
        readiness: &Readiness,
    ) -> Result<(), KafkaError> {
        readiness.register("kafka_topics");
        self.ensure_topics(&self.topics.all(target_ids)).await?;
        readiness.set("kafka_topics", true);
        Ok(())
    }

    /// Encodes `record` as `kind` for `topic` and produces it under `key`,
    /// waiting for the broker's acknowledgement.
    pub async fn publish<T: Serialize>(
        &self,
        topic: &str,
        kind: RecordKind,
        key: &[u8],
        record: &T,
    ) -> Result<(i32, i64), KafkaError> {
        let value = self.codec.encode(topic, kind, record).await?;
        self.producer
            .send(Record {
                topic,
                key,
                value: &value,
                headers: &[],
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_setting_reaches_the_group_members() {
        let mut connect = ConnectArgs::local("p");
        connect.instance_id = Some("intops-delivery-5c6d7-abcde".into());
        let ctx = ServiceContext::new(&connect).expect("context");
        assert_eq!(
            ctx.kafka
                .consumer_config("p.transform")
                .get("group.instance.id"),
            Some("intops-delivery-5c6d7-abcde")
        );
        connect.instance_id = None;
        let ctx = ServiceContext::new(&connect).expect("context");
        assert_eq!(
            ctx.kafka.consumer_config("g").get("group.instance.id"),
            None
        );
    }
}
