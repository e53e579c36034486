//! Replay marks (`<prefix>.dlq.replays`, compacted): which dead letters a
//! replay already sent on. Kept in Kafka, so any operator's machine sees
//! the same history and an interrupted replay resumes where it stopped.

use std::collections::HashSet;

use intops_events::{RecordKind, ReplayMark};
use intops_kafka::{Message, Scan, ServiceContext, Start, topics};

use crate::send;

/// The locations (`topic/partition/offset`) of every marked dead letter.
pub async fn load(ctx: &ServiceContext) -> anyhow::Result<HashSet<String>> {
    let topic = ctx.topics.dlq_replays();
    let mut marked = HashSet::new();
    if !topics::exists(&ctx.kafka, &topic)? {
        return Ok(marked);
    }
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&topic),
        Start::Beginning,
        false,
    )?;
    while let Some(message) = scan.next().await? {
        if let (Some(key), Some(_)) = (message.key(), message.payload()) {
            marked.insert(String::from_utf8_lossy(key).into_owned());
        }
    }
    Ok(marked)
}

/// Creates the marks topic if it is missing.
pub async fn ensure_topic(ctx: &ServiceContext) -> anyhow::Result<()> {
    ctx.ensure_compacted_topic(&ctx.topics.dlq_replays())
        .await?;
    Ok(())
}

/// Records that `mark`'s dead letter was sent on.
pub async fn write(ctx: &ServiceContext, mark: &ReplayMark) -> anyhow::Result<()> {
    let key = ReplayMark::key_of(
        &mark.dead_letter_topic,
        mark.dead_letter_partition,
        mark.dead_letter_offset,
    );
    send::typed(
        ctx,
        &ctx.topics.dlq_replays(),
        RecordKind::ReplayMark,
        key.as_bytes(),
        mark,
    )
    .await?;
    Ok(())
}
