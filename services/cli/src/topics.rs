//! `intops topics plan`: the topics a flows file needs, with partitions,
//! replication, cleanup policy and retention — what the services create
//! when the cluster lets them, for operators who create topics themselves.

use std::path::PathBuf;
use std::process::ExitCode;

use intops_events::Topics;
use intops_kafka::plan::{Cleanup, PlannedTopic, TopicPlan};
use intops_runtime::ConnectArgs;
use serde_json::json;

/// How to print the plan.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// One JSON array.
    Json,
    /// `kafka-topics.sh --create` commands, one per topic.
    KafkaTopics,
}

/// `intops topics plan` flags.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Topic prefix, partitions and replication (the same settings the
    /// services create topics with).
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The flows file (its targets and polled sources decide the topics).
    #[arg(long, env = "INTOPS_FLOWS")]
    pub flows: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Prints the plan; exit 2 when the flows file is invalid.
pub fn plan(args: &PlanArgs) -> ExitCode {
    let flows = match intops_flows::load_flows(&args.flows) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let plan = TopicPlan::new(
        Topics::new(&args.connect.topic_prefix),
        args.connect.topic_partitions,
        args.connect.topic_replication,
    );
    let polled = flows.sources.values().any(|s| s.poll.is_some());
    let topics = plan.all(flows.targets.keys().map(String::as_str), polled);
    match args.format {
        Format::Table => print!("{}", table(&topics)),
        Format::Json => println!(
            "{}",
            serde_json::Value::Array(topics.iter().map(to_json).collect())
        ),
        Format::KafkaTopics => {
            for t in &topics {
                println!("{}", kafka_topics(t));
            }
        }
    }
    ExitCode::SUCCESS
}

fn cleanup_words(c: Cleanup) -> (&'static str, String) {
    match c {
        Cleanup::Delete(r) => ("delete", format!("{}d", r.as_secs() / 86_400)),
        Cleanup::Compact => ("compact", "-".into()),
        Cleanup::CompactFor(r) => ("compact,delete", format!("{}d", r.as_secs() / 86_400)),
    }
}

fn table(topics: &[PlannedTopic]) -> String {
    let mut rows = vec![[
        "TOPIC".to_string(),
        "PARTITIONS".into(),
        "REPLICATION".into(),
        "CLEANUP".into(),
        "RETENTION".into(),
        "WRITTEN BY".into(),
        "HOLDS".into(),
    ]];
    for t in topics {
        let (policy, retention) = cleanup_words(t.cleanup);
        rows.push([
            t.spec.name.clone(),
            t.spec.partitions.to_string(),
            t.spec.replication.to_string(),
            policy.into(),
            retention,
            t.writer.into(),
            t.purpose.into(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn to_json(t: &PlannedTopic) -> serde_json::Value {
    let configs: serde_json::Map<String, serde_json::Value> = t
        .spec
        .configs
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "name": t.spec.name,
        "partitions": t.spec.partitions,
        "replication": t.spec.replication,
        "configs": configs,
        "written_by": t.writer,
        "holds": t.purpose,
    })
}

fn kafka_topics(t: &PlannedTopic) -> String {
    let configs: String = t
        .spec
        .configs
        .iter()
        .map(|(k, v)| format!(" --config {k}={v}"))
        .collect();
    format!(
        "kafka-topics.sh --bootstrap-server \"$KAFKA_BOOTSTRAP\" --create --if-not-exists --topic {} --partitions {} --replication-factor {}{configs}",
        t.spec.name, t.spec.partitions, t.spec.replication
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_carry_every_config() {
        let plan = TopicPlan::new(Topics::new("intops"), 12, 3);
        let topics = plan.all(["jira"], false);
        let events = kafka_topics(&topics[0]);
        assert!(events.contains("--topic intops.events --partitions 12 --replication-factor 3"));
        assert!(events.contains("--config cleanup.policy=delete --config retention.ms=604800000"));
        let t = table(&topics);
        assert!(
            t.lines()
                .any(|l| l.starts_with("intops.control ") && l.contains("compact")),
            "{t}"
        );
    }
}
