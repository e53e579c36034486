//! Conversations' links in delivery: which target record a flow's entity
//! became, so later events update it, write-backs find their way, and
//! echoes are skipped (the handler's side: `handler/links.rs`).
//!
//! - [`LinkIndex`]: every link of `<prefix>.links` in memory, compactly
//!   (`store.rs`), with this process's writes applied at once;
//! - [`Follower`]: reads the topic from the beginning at start, then
//!   follows it;
//! - [`Syncer`]: a lookup miss first waits until the follower reached the
//!   topic's high watermarks (one shared sync for concurrent misses), once
//!   per assignment of the consumer's partitions ([`Owned`]); write-backs'
//!   misses always;
//! - [`conflict`]: which echo loses when both sides changed at once;
//! - [`sweeper`]: tombstones for links idle past their flow's
//!   `expire_after`;
//! - [`capture`], [`substitution`], [`digest`]: the record id from a
//!   create's answer, the link put into a request, and the echo rule's
//!   digest.
//!
//! A stack test or benchmark builds an index over a topic with
//! [`LinkIndex::new`], [`Follower::open`] and [`Follower::catch_up`]
//! (its [`CatchUp`] says how long it took), and reads its size with
//! [`LinkIndex::len`] and [`LinkIndex::heap_bytes`].

pub mod capture;
pub mod conflict;
pub mod digest;
mod follower;
mod index;
mod kafka;
mod store;
pub use intops_flows::link_text as substitution;
pub mod sweeper;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use intops_flows::{FlowLink, Flows};
use intops_kafka::ServiceContext;
use intops_runtime::{CancellationToken, Readiness, Supervisor};

pub use capture::Captures;
pub use follower::{CatchUp, Follower};
pub use index::{Applied, LinkIndex};
pub use kafka::{KafkaTombstones, KafkaWatermarks};
pub use store::{Entry, Write};
pub use sweeper::{Expiry, Tombstones};
pub use sync::{Ends, Owned, SYNC_WITHIN, Syncer, Watermarks};

/// The readiness check that is false until the index caught up.
pub const READINESS: &str = "links";

/// What the handlers of one delivery process share about links.
#[derive(Debug)]
pub struct Links {
    /// The index.
    pub index: Arc<LinkIndex>,
    /// Syncs on a miss.
    pub syncer: Arc<Syncer>,
    /// Compiled capture programs.
    pub captures: Captures,
    /// Per capture flow, the flows that write back along its links and
    /// skip echoes (appending ones, `echo = false`, never conflict).
    write_backs: HashMap<String, Vec<String>>,
    /// Capture flows that append (`echo = false`).
    appending: HashSet<String>,
}

impl Links {
    /// Links over `index`, syncing with `syncer`.
    pub fn new(index: Arc<LinkIndex>, syncer: Syncer) -> Self {
        Self {
            index,
            syncer: Arc::new(syncer),
            captures: Captures::default(),
            write_backs: HashMap::new(),
            appending: HashSet::new(),
        }
    }

    /// Knows which flows write back along which capture flow's links.
    pub fn with_write_backs(mut self, flows: &Flows) -> Self {
        self.write_backs.clear();
        self.appending.clear();
        for f in &flows.flows {
            match &f.link {
                Some(FlowLink::From {
                    flow,
                    skip_echoes: true,
                    ..
                }) => self
                    .write_backs
                    .entry(flow.clone())
                    .or_default()
                    .push(f.id.clone()),
                Some(FlowLink::Capture {
                    skip_echoes: false, ..
                }) => {
                    self.appending.insert(f.id.clone());
                }
                _ => {}
            }
        }
        self
    }

    /// Whether capture flow `flow` appends (`echo = false`): its writes
    /// never conflict.
    pub fn appends(&self, flow: &str) -> bool {
        self.appending.contains(flow)
    }

    /// The conversation's write-back links into the source of capture
    /// flow `flow`, whose record `record_id` they follow.
    pub fn write_backs_of(&self, flow: &str, record_id: &str) -> Vec<Entry> {
        self.write_backs.get(flow).map_or_else(Vec::new, |backs| {
            backs
                .iter()
                .filter_map(|back| self.index.lookup(back, record_id))
                .collect()
        })
    }

    /// Links over an empty index that never syncs (handler tests, tools).
    pub fn offline() -> Self {
        let index = Arc::new(LinkIndex::new());
        Self::new(index.clone(), Syncer::none(index))
    }

    /// `flow`'s link for `entity_key`; on a miss (none, or pending) after
    /// a sync, unless there is none and `owned` says the index has every
    /// link of the consumer's entities already.
    pub async fn lookup(
        &self,
        flow: &str,
        entity_key: &str,
        owned: Option<&Owned>,
    ) -> Option<Entry> {
        let found = self.index.lookup(flow, entity_key);
        match (&found, owned) {
            (Some(e), _) if e.is_linked() => return found,
            // None: a link would be this member's own write, unless the
            // partition came from another member since the last sync.
            (None, Some(owned)) => owned.sync(&self.syncer).await,
            // Pending: a member that lost the partition without draining
            // may still write the captured link; always synced.
            _ => {
                self.syncer.sync().await;
            }
        }
        self.index.lookup(flow, entity_key)
    }

    /// The capture link of `flow` with target record id `record_id`; on a
    /// miss after a sync.
    pub async fn find_record(&self, flow: &str, record_id: &str) -> Option<Entry> {
        if let Some(e) = self.index.find_record(flow, record_id) {
            return Some(e);
        }
        self.syncer.sync().await;
        self.index.find_record(flow, record_id)
    }
}

/// Creates the links topic if missing, reads it into a new index (not
/// ready until then: [`READINESS`]), and has `tasks` follow it and sweep
/// the links of `targets`; `None` when `shutdown` came first.
pub async fn start(
    ctx: &ServiceContext,
    flows: &Flows,
    targets: &[String],
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Started>> {
    readiness.register(READINESS);
    let topic = ctx.topics.links();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let index = Arc::new(LinkIndex::new());
    let mut follower = Follower::open(&ctx.kafka, ctx.codec.clone(), &topic, index.clone()).await?;
    if follower.catch_up(shutdown).await?.is_none() {
        return Ok(None);
    }
    readiness.set(READINESS, true);
    let syncer = Syncer::new(
        index.clone(),
        Arc::new(KafkaWatermarks::new(&ctx.kafka, &topic)),
        SYNC_WITHIN,
    );
    Ok(Some(Started {
        links: Arc::new(Links::new(index, syncer).with_write_backs(flows)),
        follower,
        expiry: Expiry::from_flows(flows),
        targets: targets.iter().cloned().collect(),
        tombstones: Arc::new(KafkaTombstones::new(ctx.producer.clone(), &topic)),
    }))
}

/// A caught-up index and the tasks that keep it.
#[derive(Debug)]
pub struct Started {
    /// For the handlers.
    pub links: Arc<Links>,
    follower: Follower,
    expiry: Expiry,
    targets: HashSet<String>,
    tombstones: Arc<dyn Tombstones>,
}

impl Started {
    /// Spawns the follower and the sweeper under `tasks`.
    pub fn spawn(self, tasks: &mut Supervisor, shutdown: &CancellationToken) {
        tasks.spawn("links follower", self.follower.follow(shutdown.clone()));
        tasks.spawn(
            "links sweeper",
            sweeper::run(
                self.links.index.clone(),
                self.links.syncer.clone(),
                self.expiry,
                self.targets,
                self.tombstones,
                shutdown.clone(),
            ),
        );
    }
}
