//! TEMPORARY experiment (helper "faults"): does a static member leave on unsubscribe?
use std::time::{Duration, Instant};
use intops_tests::broker::PrivateBroker;
use intops_kafka::{KafkaSettings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

fn member(bootstrap: &str, id: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "g1")
        .set("group.instance.id", id)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("enable.auto.commit", "false")
        .create().expect("consumer");
    c.subscribe(&["t1"]).expect("subscribe");
    c
}

fn pump(cs: &[&BaseConsumer], secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for c in cs { let _ = c.poll(Duration::from_millis(50)); }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe() {
    let broker = PrivateBroker::start().await.expect("broker");
    let settings = KafkaSettings::new(broker.bootstrap(), Default::default()).expect("s");
    intops_kafka::topics::ensure(&settings, &[intops_kafka::topics::TopicSpec::new("t1", 3, 1)]).await.expect("topic");
    let b = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        let a = member(&b, "a");
        pump(&[&a], 5);
        eprintln!("a alone: {}", a.assignment().map(|x| x.count()).unwrap_or(0));
        let c = member(&b, "c");
        pump(&[&a, &c], 8);
        eprintln!("a+c: a {} c {}", a.assignment().map(|x| x.count()).unwrap_or(0), c.assignment().map(|x| x.count()).unwrap_or(0));
        c.unsubscribe();
        pump(&[&a, &c], 2);
        drop(c);
        for i in 0..12 {
            pump(&[&a], 2);
            eprintln!("after c unsubscribed+closed {}s: a {}", (i + 1) * 2, a.assignment().map(|x| x.count()).unwrap_or(0));
        }
    }).await.expect("join");
}
