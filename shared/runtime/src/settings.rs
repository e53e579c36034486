use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the broker and the schema registry are, and the topic prefix:
/// what every service and the command line connect with.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ConnectArgs {
    /// Kafka bootstrap servers (comma separated).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "INTOPS_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")
    )]
    pub kafka_bootstrap: String,

    /// Confluent-compatible schema registry URL.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "INTOPS_SCHEMA_REGISTRY_URL",
            default_value = "http://127.0.0.1:8081"
        )
    )]
    pub schema_registry_url: String,

    /// Schema registry basic-auth user (optional).
    #[cfg_attr(feature = "cli", arg(long, env = "INTOPS_SCHEMA_REGISTRY_USERNAME"))]
    pub schema_registry_username: Option<String>,

    /// Schema registry basic-auth password (optional; never logged: its
    /// `Debug` prints `***`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "INTOPS_SCHEMA_REGISTRY_PASSWORD",
            hide_env_values = true,
            value_parser = secret
        )
    )]
    pub schema_registry_password: Option<crate::Secret>,

    /// PEM file of CA certificates to trust for an `https://` registry
    /// (optional; the system's roots are trusted as well).
    #[cfg_attr(feature = "cli", arg(long, env = "INTOPS_SCHEMA_REGISTRY_CA"))]
    pub schema_registry_ca: Option<PathBuf>,

    /// Stable id of this process for static consumer group membership
    /// (`group.instance.id`): a restarted process with the same id takes
    /// its partitions back at once. The pod name in Kubernetes. Unset:
    /// dynamic membership. Must be unique among the running processes of
    /// a service (the broker fences the older of two: it stops).
    #[cfg_attr(feature = "cli", arg(long, env = "INTOPS_INSTANCE_ID"))]
    pub instance_id: Option<String>,

    /// Prefix of every topic and consumer group.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "INTOPS_TOPIC_PREFIX", default_value = "intops")
    )]
    pub topic_prefix: String,

    /// Partitions of topics the service creates when they are missing.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "INTOPS_TOPIC_PARTITIONS", default_value_t = 1)
    )]
    pub topic_partitions: i32,

    /// Replication factor of topics the service creates.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "INTOPS_TOPIC_REPLICATION", default_value_t = 1)
    )]
    pub topic_replication: i32,
}

/// A secret flag value: kept out of `Debug` output.
#[cfg(feature = "cli")]
fn secret(value: &str) -> Result<crate::Secret, std::convert::Infallible> {
    Ok(crate::Secret::new(value))
}

impl ConnectArgs {
    /// The local stack's addresses with `topic_prefix`.
    pub fn local(topic_prefix: &str) -> Self {
        Self {
            kafka_bootstrap: "127.0.0.1:9092".into(),
            schema_registry_url: "http://127.0.0.1:8081".into(),
            schema_registry_username: None,
            schema_registry_password: None,
            schema_registry_ca: None,
            instance_id: None,
            topic_prefix: topic_prefix.into(),
            topic_partitions: 3,
            topic_replication: 1,
        }
    }
}

/// Settings every service takes, as flags with environment fallbacks.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct CommonArgs {
    /// Broker, registry and topics.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub connect: ConnectArgs,

    /// Path of the flows file.
    #[cfg_attr(feature = "cli", arg(long, env = "INTOPS_FLOWS"))]
    pub flows: PathBuf,

    /// Address of `/healthz`, `/readyz` and `/metrics` (services whose main
    /// address serves them ignore it).
    #[cfg_attr(feature = "cli", arg(long, env = "INTOPS_ADMIN_LISTEN"))]
    pub admin_listen: Option<SocketAddr>,

    /// How long shutdown may take before in-flight work is abandoned
    /// (it is then redelivered: nothing is lost, some may be repeated).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "INTOPS_SHUTDOWN_TIMEOUT",
            default_value = "30s",
            value_parser = humantime::parse_duration
        )
    )]
    pub shutdown_timeout: Duration,

    /// Log format: `text` or `json`.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "INTOPS_LOG_FORMAT", default_value = "text")
    )]
    pub log_format: crate::telemetry::LogFormat,

    /// How long a consumer may hold no partition while its group has
    /// records left before `/readyz` reports it not ready (a rebalance
    /// normally assigns partitions within the session timeout, 10 s).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "INTOPS_UNASSIGNED_GRACE",
            default_value = "60s",
            value_parser = humantime::parse_duration
        )
    )]
    pub unassigned_grace: Duration,
}

impl CommonArgs {
    /// Settings for tests and embedding: local stack defaults.
    pub fn local(flows: PathBuf, topic_prefix: &str) -> Self {
        Self {
            connect: ConnectArgs::local(topic_prefix),
            flows,
            admin_listen: None,
            shutdown_timeout: Duration::from_secs(10),
            log_format: crate::telemetry::LogFormat::Text,
            unassigned_grace: Duration::from_secs(60),
        }
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        common: CommonArgs,
    }

    /// Settings are logged with `{:?}` (start-up, errors): the registry
    /// password must not be in that text.
    #[test]
    fn registry_password_never_appears_in_debug_output() {
        let flags = Flags::try_parse_from([
            "svc",
            "--flows",
            "f.toml",
            "--schema-registry-username",
            "intops",
            "--schema-registry-password",
            "pa55-word-xyz",
        ])
        .expect("flags");
        let password = flags.common.connect.schema_registry_password.as_ref();
        assert_eq!(password.map(|p| p.expose()), Some("pa55-word-xyz"));
        for text in [
            format!("{flags:?}"),
            format!("{:?}", flags.common.connect),
            format!("{:#?}", flags.common),
        ] {
            assert!(!text.contains("pa55-word-xyz"), "{text}");
            assert!(text.contains("intops"), "{text}");
        }
    }
}
