//! Reads `<prefix>.links` into the index: every record from the beginning
//! at start ([`Follower::catch_up`]: delivery takes no request before),
//! then whatever is written after ([`Follower::follow`]), by this process
//! (its own writes come back, already applied) or any other. No consumer
//! group: every delivery process reads every partition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use intops_events::{Codec, Link};
use intops_kafka::{KafkaError, KafkaSettings, Message, OwnedMessage, Scan, Scanned, Start};
use intops_runtime::CancellationToken;
use rdkafka::Timestamp;

use super::LinkIndex;

/// How long the follower waits before it tries again when the registry
/// cannot decode a link.
const RETRY: Duration = Duration::from_secs(1);

/// What the catch-up read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Records read (links and tombstones).
    pub records: u64,
    /// Links in the index afterwards.
    pub links: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// The reader of the links topic.
pub struct Follower {
    scan: Scan,
    index: Arc<LinkIndex>,
    codec: Arc<Codec>,
    topic: String,
    records: u64,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("topic", &self.topic)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Opens the links topic `topic` (which must exist) from the
    /// beginning, for `index`.
    pub async fn open(
        settings: &KafkaSettings,
        codec: Arc<Codec>,
        topic: &str,
        index: Arc<LinkIndex>,
    ) -> Result<Self, KafkaError> {
        // Its own writes are applied as they are made; another process's
        // may come a second later, and a lookup that must not miss one
        // syncs first (sync.rs). A prompt fetch over every partition of
        // the links topic would cost the broker more than the pipeline.
        let scan = Scan::open_paced(
            settings,
            &[topic.to_string()],
            Start::Beginning,
            true,
            intops_kafka::Pace::Background,
        )
        .await?;
        Ok(Self {
            scan,
            index,
            codec,
            topic: topic.to_string(),
            records: 0,
        })
    }

    /// Reads up to the end the topic had when opened; `None` when
    /// `shutdown` came first.
    pub async fn catch_up(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<CatchUp>, KafkaError> {
        let began = Instant::now();
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                n = self.scan.next_scanned() => n?,
            };
            match next {
                Some(Scanned::Record(message)) => {
                    if !self.apply(&message, shutdown).await {
                        return Ok(None);
                    }
                }
                Some(Scanned::CaughtUp) | None => break,
            }
        }
        let caught_up = CatchUp {
            records: self.records,
            links: self.index.len(),
            elapsed: began.elapsed(),
        };
        tracing::info!(
            topic = %self.topic,
            records = caught_up.records,
            links = caught_up.links,
            elapsed_ms = caught_up.elapsed.as_millis() as u64,
            heap_bytes = self.index.heap_bytes(),
            "links index caught up"
        );
        Ok(Some(caught_up))
    }

    /// Applies records as they come, until `shutdown`.
    pub async fn follow(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                n = self.scan.next() => n,
            };
            match next {
                Ok(Some(message)) => {
                    if !self.apply(&message, &shutdown).await {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "reading links");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }

    /// Applies one record; `false` when `shutdown` interrupted it.
    async fn apply(&mut self, message: &OwnedMessage, shutdown: &CancellationToken) -> bool {
        self.records += 1;
        let key = String::from_utf8_lossy(message.key().unwrap_or_default());
        match message.payload().filter(|p| !p.is_empty()) {
            None => {
                let written_at = match message.timestamp() {
                    Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => {
                        // The whole millisecond: a link written in it counts
                        // as before the tombstone.
                        Some(ms.saturating_mul(1000).saturating_add(999))
                    }
                    Timestamp::NotAvailable => None,
                };
                self.index.apply_read(&key, None, written_at);
            }
            Some(bytes) => loop {
                match self.codec.decode::<Link>(bytes).await {
                    Ok(link) => {
                        self.index.apply_read(&key, Some(&link), None);
                        break;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(topic = %self.topic, offset = message.offset(), error = %e, "cannot decode a link yet, retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return false,
                            () = tokio::time::sleep(RETRY) => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, partition = message.partition(), offset = message.offset(), error = %e, "skipping an undecodable link");
                        break;
                    }
                }
            },
        }
        self.index
            .read_position(message.partition(), message.offset());
        true
    }
}
