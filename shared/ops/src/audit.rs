//! Audit records of operator actions that write to the pipeline
//! (`<prefix>.audit`): who, when, what was selected, what happened.

use std::collections::{BTreeMap, HashMap};

use intops_events::{AuditRecord, RecordKind, now_micros};
use intops_kafka::ServiceContext;

use crate::send;

/// One action's audit trail: a started record, then a finished one.
#[derive(Debug)]
pub struct Audit {
    record: AuditRecord,
}

impl Audit {
    /// The trail of `action` (`dlq.replay`, `flow.rewind`) with id
    /// `action_id`, run by `operator` with `filters`.
    pub fn new(
        action: &str,
        action_id: &str,
        operator: &str,
        filters: &BTreeMap<String, String>,
    ) -> Self {
        Self {
            record: AuditRecord {
                action_id: action_id.into(),
                action: action.into(),
                phase: String::new(),
                operator: operator.into(),
                host: intops_runtime::host_name(),
                filters: filters.clone().into_iter().collect(),
                counts: HashMap::new(),
                at: 0,
            },
        }
    }

    /// Writes the started record.
    pub async fn started(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
        self.write(ctx, "started", &BTreeMap::new()).await
    }

    /// Writes the finished record with `counts`.
    pub async fn finished(
        &mut self,
        ctx: &ServiceContext,
        counts: &BTreeMap<&'static str, i64>,
    ) -> anyhow::Result<()> {
        self.write(ctx, "finished", counts).await
    }

    async fn write(
        &mut self,
        ctx: &ServiceContext,
        phase: &str,
        counts: &BTreeMap<&'static str, i64>,
    ) -> anyhow::Result<()> {
        self.record.phase = phase.into();
        self.record.counts = counts.iter().map(|(k, v)| ((*k).to_string(), *v)).collect();
        self.record.at = now_micros();
        let topic = ctx.topics.audit();
        ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
        send::typed(
            ctx,
            &topic,
            RecordKind::AuditRecord,
            self.record.action_id.as_bytes(),
            &self.record,
        )
        .await?;
        Ok(())
    }
}

/// Who runs the command: `flag` when given, else the OS user.
pub fn operator(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
