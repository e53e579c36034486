//! The links' compact in-memory form: one 104-byte slot per link in a
//! vector, and two hash tables of slot numbers (4 bytes a bucket) over it:
//! forward `(flow, entity key)` and backward `(flow, record id)` (capture
//! links only). A slot keeps its entity key and record id in one boxed
//! string and its flow, followed flow and target as numbers of an interner,
//! so a million links take about 170 MB (docs: "Links").
//!
//! No locking and no ordering rules here: [`crate::links::LinkIndex`] owns
//! both.

use std::hash::BuildHasher as _;

use hashbrown::{DefaultHashBuilder, HashTable};
use intops_events::{Link, LinkMode};

/// No interned name (a slot's followed flow when it has none).
const NONE: u32 = u32::MAX;

/// The slot holds a link (not on the free list).
const LIVE: u8 = 1;
/// `mode = from`.
const FROM: u8 = 2;
/// The record id is known (`record_id` is `Some`).
const RECORD: u8 = 4;
/// `last_write` is known.
const WRITTEN: u8 = 8;

/// One link, compactly.
#[derive(Debug, Default)]
struct Slot {
    /// The entity key, then the record id.
    text: Box<str>,
    /// Length of the entity key in `text`.
    split: u32,
    flow: u32,
    via: u32,
    target: u32,
    flags: u8,
    /// The digest of the last write ([`crate::links::digest`]).
    last_write: u64,
    created_at: i64,
    updated_at: i64,
    /// The last request to the target: when it went out, and its
    /// event's ingest time; then the request before ([`NEVER`]: not
    /// recorded).
    written: Write,
    earlier: Write,
    /// The newest source event answered ([`NEVER`] when not recorded).
    seen_at: i64,
}

/// One request written through a link: when it went out (`written_at`)
/// and when its event was ingested (`basis_at`), microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    pub written_at: i64,
    pub basis_at: i64,
}

impl Default for Write {
    fn default() -> Self {
        Self {
            written_at: NEVER,
            basis_at: NEVER,
        }
    }
}

impl Write {
    fn of(written_at: Option<i64>, basis_at: Option<i64>) -> Self {
        Self {
            written_at: written_at.unwrap_or(NEVER),
            basis_at: basis_at.unwrap_or(NEVER),
        }
    }

    /// Whether both times are recorded.
    pub fn is_known(&self) -> bool {
        self.written_at != NEVER && self.basis_at != NEVER
    }
}

/// `seen_at` not recorded.
pub(crate) const NEVER: i64 = i64::MIN;

impl Slot {
    fn entity_key(&self) -> &str {
        self.text.get(..self.split as usize).unwrap_or_default()
    }

    fn record_id(&self) -> Option<&str> {
        (self.flags & RECORD != 0).then(|| self.text.get(self.split as usize..).unwrap_or_default())
    }

    fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A link as the index hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The flow that writes through it.
    pub flow_id: String,
    /// `capture` or `from`.
    pub mode: LinkMode,
    /// `from`: the capture flow it follows.
    pub via_flow: Option<String>,
    /// The source's entity key.
    pub entity_key: String,
    /// The target.
    pub target_id: String,
    /// The target's record id; `None` while a create is unconfirmed.
    pub record_id: Option<String>,
    /// Digest of the last request written through it.
    pub last_write: Option<u64>,
    /// When first written (microseconds).
    pub created_at: i64,
    /// Last activity (microseconds).
    pub updated_at: i64,
    /// The last request written through it (see [`Write`]).
    pub written: Write,
    /// The request before.
    pub earlier: Write,
    /// Ingest time of the newest source event answered through it
    /// (microseconds; `i64::MIN` when not recorded).
    pub seen_at: i64,
}

impl Entry {
    /// Whether the target's record id is known.
    pub fn is_linked(&self) -> bool {
        self.record_id.is_some()
    }
}

/// A link as [`Store::for_each`] shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) flow_id: &'a str,
    /// `mode = from`.
    pub(crate) from: bool,
    pub(crate) via_flow: Option<&'a str>,
    pub(crate) entity_key: &'a str,
    pub(crate) target_id: &'a str,
    pub(crate) record_id: Option<&'a str>,
    pub(crate) updated_at: i64,
}

/// Names (flow and target ids) as small numbers.
#[derive(Debug, Default)]
struct Interner {
    names: Vec<Box<str>>,
    numbers: hashbrown::HashMap<Box<str>, u32>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(n) = self.numbers.get(name) {
            return *n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(NONE - 1);
        self.names.push(name.into());
        self.numbers.insert(name.into(), n);
        n
    }

    fn number(&self, name: &str) -> Option<u32> {
        self.numbers.get(name).copied()
    }

    fn name(&self, n: u32) -> &str {
        self.names.get(n as usize).map_or("", |s| s)
    }
}

/// Every link one delivery process knows.
#[derive(Debug, Default)]
pub(crate) struct Store {
    slots: Vec<Slot>,
    free: Vec<u32>,
    forward: HashTable<u32>,
    backward: HashTable<u32>,
    hasher: DefaultHashBuilder,
    names: Interner,
    /// Bytes of the slots' strings (for [`Store::heap_bytes`]).
    text_bytes: usize,
}

impl Store {
    /// Links held.
    pub(crate) fn len(&self) -> usize {
        self.forward.len()
    }

    /// Heap bytes used, approximately: slots, tables and strings (without
    /// the allocator's rounding).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * 4
            + self.forward.allocation_size()
            + self.backward.allocation_size()
            + self.text_bytes
            + self
                .names
                .names
                .iter()
                .map(|n| 2 * n.len() + 48)
                .sum::<usize>()
    }

    /// The link of `flow` for `entity_key`.
    pub(crate) fn get(&self, flow: &str, entity_key: &str) -> Option<Entry> {
        let n = self.find(self.names.number(flow)?, entity_key)?;
        Some(self.entry(n))
    }

    /// The capture link of `flow` whose record id is `record_id`.
    pub(crate) fn find_record(&self, flow: &str, record_id: &str) -> Option<Entry> {
        let flow = self.names.number(flow)?;
        let hash = self.hash(flow, record_id);
        let n = *self.backward.find(hash, |n| {
            let s = &self.slots[*n as usize];
            s.flow == flow && s.record_id() == Some(record_id)
        })?;
        Some(self.entry(n))
    }

    /// The updated_at of `flow`'s link for `entity_key`.
    pub(crate) fn updated_at(&self, flow: &str, entity_key: &str) -> Option<i64> {
        let n = self.find(self.names.number(flow)?, entity_key)?;
        Some(self.slots[n as usize].updated_at)
    }

    /// Inserts `link` or replaces the link with its key.
    pub(crate) fn put(&mut self, link: &Link) {
        let flow = self.names.intern(&link.flow_id);
        let via = link
            .via_flow
            .as_deref()
            .map_or(NONE, |v| self.names.intern(v));
        let target = self.names.intern(&link.target_id);
        let mut text = String::with_capacity(
            link.entity_key.len() + link.record_id.as_deref().map_or(0, str::len),
        );
        text.push_str(&link.entity_key);
        text.push_str(link.record_id.as_deref().unwrap_or_default());
        let last_write = link
            .last_write
            .as_deref()
            .and_then(|d| u64::from_str_radix(d, 16).ok());
        let mut flags = LIVE;
        if link.mode == LinkMode::From {
            flags |= FROM;
        }
        if link.record_id.is_some() {
            flags |= RECORD;
        }
        if last_write.is_some() {
            flags |= WRITTEN;
        }
        let slot = Slot {
            split: u32::try_from(link.entity_key.len()).unwrap_or(u32::MAX),
            text: text.into_boxed_str(),
            flow,
            via,
            target,
            flags,
            last_write: last_write.unwrap_or_default(),
            created_at: link.created_at,
            updated_at: link.updated_at,
            written: Write::of(link.written_at, link.basis_at),
            earlier: Write::of(link.earlier_written_at, link.earlier_basis_at),
            seen_at: link.seen_at.unwrap_or(NEVER),
        };
        let n = match self.find(flow, &link.entity_key) {
            Some(n) => {
                self.unlink_backward(n);
                self.text_bytes -= self.slots[n as usize].text.len();
                self.slots[n as usize] = slot;
                n
            }
            None => {
                let n = self.allocate(slot);
                let hash = self.hash(flow, &link.entity_key);
                let slots = &self.slots;
                let hasher = &self.hasher;
                self.forward.insert_unique(hash, n, |m| {
                    let s = &slots[*m as usize];
                    hash_of(hasher, s.flow, s.entity_key())
                });
                n
            }
        };
        self.text_bytes += self.slots[n as usize].text.len();
        self.link_backward(n);
    }

    /// Removes `flow`'s link for `entity_key`; whether there was one.
    pub(crate) fn remove(&mut self, flow: &str, entity_key: &str) -> bool {
        let Some(flow) = self.names.number(flow) else {
            return false;
        };
        let hash = self.hash(flow, entity_key);
        let slots = &self.slots;
        let Ok(found) = self.forward.find_entry(hash, |n| {
            let s = &slots[*n as usize];
            s.flow == flow && s.entity_key() == entity_key
        }) else {
            return false;
        };
        let (n, _) = found.remove();
        self.unlink_backward(n);
        let slot = std::mem::take(&mut self.slots[n as usize]);
        self.text_bytes -= slot.text.len();
        self.free.push(n);
        true
    }

    /// Every link, for the sweeper: `f(view)` for each (no copies).
    pub(crate) fn for_each(&self, mut f: impl FnMut(View<'_>)) {
        for n in self.forward.iter() {
            let s = &self.slots[*n as usize];
            f(View {
                flow_id: self.names.name(s.flow),
                from: s.is(FROM),
                via_flow: (s.via != NONE).then(|| self.names.name(s.via)),
                entity_key: s.entity_key(),
                target_id: self.names.name(s.target),
                record_id: s.record_id(),
                updated_at: s.updated_at,
            });
        }
    }

    fn entry(&self, n: u32) -> Entry {
        let s = &self.slots[n as usize];
        Entry {
            flow_id: self.names.name(s.flow).to_string(),
            mode: if s.is(FROM) {
                LinkMode::From
            } else {
                LinkMode::Capture
            },
            via_flow: (s.via != NONE).then(|| self.names.name(s.via).to_string()),
            entity_key: s.entity_key().to_string(),
            target_id: self.names.name(s.target).to_string(),
            record_id: s.record_id().map(str::to_string),
            last_write: s.is(WRITTEN).then_some(s.last_write),
            created_at: s.created_at,
            updated_at: s.updated_at,
            written: s.written,
            earlier: s.earlier,
            seen_at: s.seen_at,
        }
    }

    fn find(&self, flow: u32, entity_key: &str) -> Option<u32> {
        let hash = self.hash(flow, entity_key);
        self.forward
            .find(hash, |n| {
                let s = &self.slots[*n as usize];
                s.flow == flow && s.entity_key() == entity_key
            })
            .copied()
    }

    fn allocate(&mut self, slot: Slot) -> u32 {
        if let Some(n) = self.free.pop() {
            self.slots[n as usize] = slot;
            return n;
        }
        let n = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(slot);
        n
    }

    /// Enters slot `n` in the backward table if it is a capture link with
    /// a record id; a record id another link of the flow has too now
    /// finds this one (the newest).
    fn link_backward(&mut self, n: u32) {
        let s = &self.slots[n as usize];
        if s.is(FROM) {
            return;
        }
        let Some(record_id) = s.record_id() else {
            return;
        };
        let flow = s.flow;
        let hash = self.hash(flow, record_id);
        let slots = &self.slots;
        let hasher = &self.hasher;
        match self.backward.entry(
            hash,
            |m| {
                let o = &slots[*m as usize];
                o.flow == flow && o.record_id() == Some(record_id)
            },
            |m| {
                let o = &slots[*m as usize];
                hash_of(hasher, o.flow, o.record_id().unwrap_or_default())
            },
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = n,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(n);
            }
        }
    }

    /// Removes slot `n` from the backward table, if it is there (another
    /// link with the same record id may have taken its place).
    fn unlink_backward(&mut self, n: u32) {
        let s = &self.slots[n as usize];
        if s.is(FROM) {
            return;
        }
        let Some(record_id) = s.record_id() else {
            return;
        };
        let hash = self.hash(s.flow, record_id);
        if let Ok(found) = self.backward.find_entry(hash, |m| *m == n) {
            found.remove();
        }
    }

    fn hash(&self, flow: u32, text: &str) -> u64 {
        hash_of(&self.hasher, flow, text)
    }
}

fn hash_of(hasher: &DefaultHashBuilder, flow: u32, text: &str) -> u64 {
    hasher.hash_one((flow, text))
}
