//! Reading dead letters from their topics, oldest first per partition.

use intops_events::{DeadLetter, ReplayMark};
use intops_kafka::{Message, Scan, ServiceContext, Start, topics};

/// One dead letter and where it is stored.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The dead-letter topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The decoded dead letter.
    pub letter: DeadLetter,
}

impl Letter {
    /// Where it is stored, `topic/partition/offset` (its replay mark key).
    pub fn location(&self) -> String {
        ReplayMark::key_of(&self.topic, self.partition, self.offset)
    }
}

/// A scan of dead-letter topics up to their end at start.
#[derive(Debug)]
pub struct Letters<'a> {
    ctx: &'a ServiceContext,
    scan: Option<Scan>,
    /// Records that are not dead letters (skipped).
    pub undecodable: usize,
    /// Why each of the first undecodable records was skipped.
    warnings: Vec<String>,
}

/// Undecodable records described, at most.
const MAX_WARNINGS: usize = 20;

impl<'a> Letters<'a> {
    /// Opens a scan of those of `topic_names` that exist.
    pub async fn open(ctx: &'a ServiceContext, topic_names: &[String]) -> anyhow::Result<Self> {
        let mut present = Vec::new();
        for t in topic_names {
            if topics::exists(&ctx.kafka, t).await? {
                present.push(t.clone());
            }
        }
        let scan = if present.is_empty() {
            None
        } else {
            Some(Scan::open(&ctx.kafka, &present, Start::Beginning, false).await?)
        };
        Ok(Self {
            ctx,
            scan,
            undecodable: 0,
            warnings: Vec::new(),
        })
    }

    /// The next dead letter, or `None` at the end.
    pub async fn next(&mut self) -> anyhow::Result<Option<Letter>> {
        let Some(scan) = self.scan.as_mut() else {
            return Ok(None);
        };
        while let Some(message) = scan.next().await? {
            let decoded = match message.payload() {
                Some(bytes) => self.ctx.codec.decode::<DeadLetter>(bytes).await,
                None => Err(intops_events::CodecError::Undecodable("empty value".into())),
            };
            match decoded {
                Ok(letter) => {
                    return Ok(Some(Letter {
                        topic: message.topic().to_string(),
                        partition: message.partition(),
                        offset: message.offset(),
                        letter,
                    }));
                }
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    self.undecodable += 1;
                    if self.warnings.len() < MAX_WARNINGS {
                        self.warnings.push(format!(
                            "{}/{}/{} is not a dead letter: {e}",
                            message.topic(),
                            message.partition(),
                            message.offset()
                        ));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The skipped records so far (the first few described, then their
    /// count), emptied.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.warnings);
        if self.undecodable > 0 {
            out.push(format!(
                "{} undecodable record(s) in the dead-letter topics were skipped",
                self.undecodable
            ));
        }
        out
    }
}
