//! A rewind that writes (not a dry run): its audit record and the lanes
//! producing delivery requests to the flow's target topic.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use governor::DefaultDirectRateLimiter;
use intops_events::{DeliveryRequest, RecordKind};
use intops_flows::Flow;
use intops_kafka::{Record, ServiceContext, topics};

use super::tally::Tally;
use super::{REWIND_ID, RewindArgs};
use crate::audit::{self, Audit};
use crate::lanes::{DEPTH, LANES, Lanes};
use crate::{send, when};

/// The per-run state of a rewind that writes.
#[derive(Debug)]
pub(super) struct Session {
    rewind_id: String,
    audit: Audit,
    lanes: Lanes<(Vec<u8>, DeliveryRequest)>,
    produced: Arc<AtomicI64>,
    limiter: DefaultDirectRateLimiter,
}

impl Session {
    /// Checks that `target_topic` exists, records the start in the audit
    /// trail and starts the lanes.
    pub async fn start(
        ctx: &ServiceContext,
        args: &RewindArgs,
        flow: &Flow,
        target_topic: &str,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            topics::exists(&ctx.kafka, target_topic).await?,
            "topic {target_topic} does not exist: start transform with this flows file first"
        );
        let rewind_id = uuid::Uuid::now_v7().to_string();
        let mut audit = Audit::new(
            "flow.rewind",
            &rewind_id,
            &audit::operator(args.operator.as_deref()),
            &filters(args, flow),
        );
        audit.started(ctx).await?;
        let produced = Arc::new(AtomicI64::new(0));
        let lanes = lanes(ctx, target_topic, &rewind_id, &produced);
        Ok(Self {
            rewind_id,
            audit,
            lanes,
            produced,
            limiter: crate::pace::limiter(args.rate),
        })
    }

    /// Queues `request` on the lane of `key` at the rate limit; `Break`
    /// once a lane failed ([`Session::finish`] reports why).
    pub async fn push(&self, key: Vec<u8>, request: DeliveryRequest) -> ControlFlow<()> {
        self.limiter.until_ready().await;
        match self.lanes.send(&key.clone(), (key, request)).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }

    /// Waits for every request, records the counts in the audit trail and
    /// returns the rewind's id and how many requests it produced.
    pub async fn finish(
        self,
        ctx: &ServiceContext,
        tally: &Tally,
    ) -> anyhow::Result<(String, i64)> {
        let Session {
            rewind_id,
            mut audit,
            lanes,
            produced,
            ..
        } = self;
        let finished = lanes.finish().await;
        let produced = produced.load(Ordering::Relaxed);
        let mut counts = BTreeMap::new();
        counts.insert("scanned", tally.scanned);
        counts.insert("in_range", tally.in_range);
        counts.insert("matched", tally.matched);
        counts.insert("mapping_failed", tally.failed);
        counts.insert("produced", produced);
        audit.finished(ctx, &counts).await?;
        finished?;
        Ok((rewind_id, produced))
    }
}

/// What the audit record says the rewind selected.
fn filters(args: &RewindArgs, flow: &Flow) -> BTreeMap<String, String> {
    let mut filters = BTreeMap::new();
    filters.insert("flow".to_string(), flow.id.clone());
    filters.insert("flow_version".to_string(), flow.version.clone());
    filters.insert("since".to_string(), when::format(args.since));
    if let Some(u) = args.until {
        filters.insert("until".to_string(), when::format(u));
    }
    filters
}

/// Lanes producing each request to `topic`, tagged with the rewind's id.
fn lanes(
    ctx: &ServiceContext,
    topic: &str,
    rewind_id: &str,
    produced: &Arc<AtomicI64>,
) -> Lanes<(Vec<u8>, DeliveryRequest)> {
    let (ctx, topic, id, produced) = (
        ctx.clone(),
        topic.to_string(),
        rewind_id.to_string(),
        produced.clone(),
    );
    Lanes::each(
        LANES,
        DEPTH,
        move |(key, request): (Vec<u8>, DeliveryRequest)| {
            let (ctx, topic, id, produced) =
                (ctx.clone(), topic.clone(), id.clone(), produced.clone());
            async move {
                let value = ctx
                    .codec
                    .encode(&topic, RecordKind::DeliveryRequest, &request)
                    .await?;
                let headers: [(&str, &[u8]); 1] = [(REWIND_ID, id.as_bytes())];
                send::raw(
                    &ctx,
                    Record {
                        topic: &topic,
                        key: &key,
                        value: &value,
                        headers: &headers,
                    },
                )
                .await?;
                produced.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        },
    )
}
