//! Replay marks (`<prefix>.dlq.replays`, compacted): which dead letters a
//! replay already sent on. Kept in Kafka, so any operator's machine sees
//! the same history and an interrupted replay resumes where it stopped.
//! Marks are written in batches (one record per up to [`BATCH`] dead
//! letters or [`LINGER`]), each mark only after everything derived from
//! its dead letter was acknowledged.

use std::collections::HashSet;
use std::time::Duration;

use intops_events::{RecordKind, ReplayMark, ReplayMarks, now_micros};
use intops_kafka::{Message, Scan, ServiceContext, Start, topics};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Watch, send};

/// Marks per record at most.
pub const BATCH: usize = 500;
/// How long a mark may wait for its batch to fill.
pub const LINGER: Duration = Duration::from_millis(20);

/// The locations (`topic/partition/offset`) of every marked dead letter.
/// Undecodable records are skipped and told to `watch`.
pub async fn load(ctx: &ServiceContext, watch: &dyn Watch) -> anyhow::Result<HashSet<String>> {
    let topic = ctx.topics.dlq_replays();
    let mut marked = HashSet::new();
    if !topics::exists(&ctx.kafka, &topic).await? {
        return Ok(marked);
    }
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&topic),
        Start::Beginning,
        false,
    )
    .await?;
    while let Some(message) = scan.next().await? {
        let Some(bytes) = message.payload() else {
            continue;
        };
        match ctx.codec.decode::<ReplayMarks>(bytes).await {
            Ok(batch) => marked.extend(batch.marks.iter().map(ReplayMark::location)),
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => watch.warning(&format!(
                "{topic}/{}/{} is not a replay mark: {e}",
                message.partition(),
                message.offset()
            )),
        }
    }
    Ok(marked)
}

/// Creates the marks topic if it is missing.
pub async fn ensure_topic(ctx: &ServiceContext) -> anyhow::Result<()> {
    ctx.ensure_topics(&[ctx.topics.dlq_replays()]).await?;
    Ok(())
}

/// Takes marks from any task and writes them in batches.
#[derive(Debug, Clone)]
pub struct Marker {
    tx: mpsc::Sender<ReplayMark>,
}

/// Ends a [`Marker`]: writes what is queued and reports the first error.
#[derive(Debug)]
pub struct Flush {
    done: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Starts the writer of `replay_id`'s marks.
pub fn start(ctx: &ServiceContext, replay_id: &str) -> (Marker, Flush) {
    let (tx, rx) = mpsc::channel(BATCH * 4);
    let done = CancellationToken::new();
    let task = tokio::spawn(write_batches(
        ctx.clone(),
        replay_id.to_string(),
        rx,
        done.clone(),
    ));
    (Marker { tx }, Flush { done, task })
}

impl Marker {
    /// Queues one mark.
    pub async fn mark(&self, mark: ReplayMark) -> anyhow::Result<()> {
        self.tx
            .send(mark)
            .await
            .map_err(|_| anyhow::anyhow!("the replay marks writer stopped"))
    }
}

impl Flush {
    /// Call once every mark was queued: writes the rest and waits.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.done.cancel();
        self.task.await?
    }
}

async fn write_batches(
    ctx: ServiceContext,
    replay_id: String,
    mut rx: mpsc::Receiver<ReplayMark>,
    done: CancellationToken,
) -> anyhow::Result<()> {
    let topic = ctx.topics.dlq_replays();
    let mut batch = Vec::with_capacity(BATCH);
    let mut number = 0u64;
    loop {
        let finishing = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    batch.push(m);
                    false
                }
                None => true,
            },
            () = done.cancelled() => true,
        };
        if !finishing && batch.len() == 1 {
            // Linger for the batch to fill.
            let deadline = tokio::time::sleep(LINGER);
            tokio::pin!(deadline);
            while batch.len() < BATCH {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => batch.push(m),
                        None => break,
                    },
                    () = &mut deadline => break,
                }
            }
        }
        if finishing {
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
        }
        for chunk in batch.chunks(BATCH) {
            let record = ReplayMarks {
                replay_id: replay_id.clone(),
                marks: chunk.to_vec(),
                at: now_micros(),
            };
            let key = format!("{replay_id}/{number}");
            number += 1;
            send::typed(
                &ctx,
                &topic,
                RecordKind::ReplayMarks,
                key.as_bytes(),
                &record,
            )
            .await?;
        }
        batch.clear();
        if finishing {
            return Ok(());
        }
    }
}
