//! The local stack the tests run against (started by deploy/local/test.sh).

use rand::Rng as _;

/// Kafka bootstrap servers: `INTOPS_KAFKA_BOOTSTRAP` or the local default.
pub fn bootstrap() -> String {
    std::env::var("INTOPS_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Schema registry URL: `INTOPS_SCHEMA_REGISTRY_URL` or the local default.
pub fn registry_url() -> String {
    std::env::var("INTOPS_SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into())
}

/// A codec on the local registry, as the services build it.
pub fn codec() -> intops_events::Codec {
    let settings = intops_events::RegistrySettings {
        url: registry_url(),
        basic_auth: None,
        timeout: std::time::Duration::from_secs(10),
        ca_pem: None,
    };
    match intops_events::Codec::new(&settings) {
        Ok(codec) => codec,
        Err(e) => panic!("codec: {e}"),
    }
}

/// A loopback port nothing listens on at this moment, for a private
/// broker, registry or service listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A topic prefix no other test uses, so tests never share topics,
/// consumer groups or registry subjects.
pub fn random_prefix(name: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("t{name}{n:016x}")
}
