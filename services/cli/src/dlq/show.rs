//! `intops dlq show`: the dead letters themselves, with their provenance,
//! error, attempts, the target's last answer and the decoded payload.

use intops_kafka::ServiceContext;
use serde_json::{Value, json};

use intops_ops::dlq::{Filters, Letter, Letters, marks};
use intops_ops::watch::{self, Watch};

use crate::{decode, when};

/// Prints every selected dead letter.
pub async fn run(ctx: &ServiceContext, filters: &Filters, as_json: bool) -> anyhow::Result<()> {
    let marked = marks::load(ctx, &watch::Stderr).await?;
    let mut letters = Letters::open(ctx, &filters.topics(&ctx.topics)).await?;
    let mut shown = 0usize;
    while let Some(l) = letters.next().await? {
        if !filters.matches(&l.letter) {
            continue;
        }
        if filters.limit.is_some_and(|n| shown >= n) {
            break;
        }
        shown += 1;
        let view = view(ctx, &l, marked.contains(&l.location())).await?;
        if as_json {
            println!("{}", serde_json::to_string(&view)?);
        } else {
            print_text(&view);
        }
    }
    for text in letters.take_warnings() {
        watch::Stderr.warning(&text);
    }
    if !as_json {
        println!("{shown} dead letter(s) shown");
    }
    Ok(())
}

/// One dead letter as JSON, its original value decoded.
pub async fn view(ctx: &ServiceContext, l: &Letter, replayed: bool) -> anyhow::Result<Value> {
    let d = &l.letter;
    let payload = match decode::value(&ctx.codec, d.original_value.as_deref()).await {
        Ok(v) => v,
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => json!({ "undecodable": e.to_string() }),
    };
    Ok(json!({
        "location": l.location(),
        "replayed": replayed,
        "stage": d.stage.as_str(),
        "error_class": d.error_class,
        "error": d.error_message,
        "retryable": d.retryable,
        "attempts": d.attempts,
        "replay_count": d.replay_count,
        "failed_at": when::format(d.failed_at),
        "event_id": d.event_id,
        "flow_id": d.flow_id,
        "tenant": d.tenant,
        "flow_version": d.flow_version,
        "target_id": d.target_id,
        "http_status": d.http_status,
        "response_excerpt": d.response_excerpt,
        "original": {
            "topic": d.original_topic,
            "partition": d.original_partition,
            "offset": d.original_offset,
            "key": decode::text(d.original_key.as_deref()),
            "headers": decode::stored_headers(&d.original_headers),
        },
        "payload": payload,
    }))
}

fn print_text(v: &Value) {
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let o = &v["original"];
    println!(
        "{}  {}  {}{}",
        s("location"),
        s("stage"),
        s("error_class"),
        if v["replayed"] == Value::Bool(true) {
            "  (replayed)"
        } else {
            ""
        }
    );
    println!(
        "  failed_at {}  attempts {}  replay_count {}  retryable {}",
        s("failed_at"),
        s("attempts"),
        s("replay_count"),
        s("retryable")
    );
    println!(
        "  event {}  flow {}  target {}  tenant {}  http_status {}",
        s("event_id"),
        s("flow_id"),
        s("target_id"),
        s("tenant"),
        s("http_status")
    );
    if let Some(version) = v["flow_version"].as_str() {
        println!(
            "  flow version {version} (its definition: intops flows show --version {version})"
        );
    }
    println!("  error: {}", s("error"));
    if !v["response_excerpt"].is_null() {
        println!("  response: {}", s("response_excerpt"));
    }
    println!(
        "  original: {}/{}/{} key {}",
        o["topic"].as_str().unwrap_or("-"),
        o["partition"],
        o["offset"],
        o["key"].as_str().unwrap_or("-")
    );
    println!("  payload: {}", v["payload"]);
    println!();
}
