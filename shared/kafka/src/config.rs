use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::KafkaError;

/// Options that typed settings own; pass-through cannot override them,
/// because the delivery guarantees depend on their values.
const OWNED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "isolation.level",
    "message.max.bytes",
    "group.instance.id",
];

/// The largest record the producers write (`message.max.bytes`), set
/// deliberately rather than left to librdkafka's default. It is below
/// Apache Kafka's broker and topic default (`max.message.bytes`, 1,048,588),
/// so a record the producer accepts is one the broker accepts. Ingest keeps
/// its default body limit and its per-record check below it (envelope,
/// headers and payload must fit); a derived record that would not fit is
/// dead-lettered in slim form. See docs/architecture.md, "Record sizes".
pub const MAX_RECORD_BYTES: usize = 1_000_000;

/// Prefix of environment variables that pass librdkafka options through:
/// `INTOPS_KAFKA_OPTION_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol`.
pub const OPTION_ENV_PREFIX: &str = "INTOPS_KAFKA_OPTION_";

/// Environment variable holding this process's stable instance id (the
/// pod's name in the Kubernetes manifests; read by
/// `intops_runtime::ConnectArgs`). When set, every consumer group member
/// of the process is a static member (`group.instance.id`): a
/// restarted instance takes its partitions back at once instead of waiting
/// for the group to evict its dead predecessor, which the local broker
/// (tansu 0.6) never does while a replacement is joining. Unset: dynamic
/// membership. Two running processes must never share an id: the broker
/// fences the older one, which then stops with a fatal error.
pub const INSTANCE_ID_ENV: &str = "INTOPS_INSTANCE_ID";

/// Kafka's limit on a `group.instance.id`.
const MAX_INSTANCE_ID_LEN: usize = 249;

/// How to reach Kafka.
#[derive(Clone)]
pub struct KafkaSettings {
    bootstrap: String,
    options: BTreeMap<String, String>,
    instance_id: Option<String>,
    /// `fetch.wait.max.ms` of [`Pace::Prompt`] consumers, when set
    /// ([`PROMPT_FETCH_WAIT_ENV`]).
    prompt_wait_ms: Option<u32>,
}

/// Environment variable of the prompt consumers' fetch wait in
/// milliseconds ([`Pace::Prompt`], default 10): what a hop may wait at a
/// broker that holds fetches (tansu), against what idle consumers cost
/// it. Background readers keep theirs.
pub const PROMPT_FETCH_WAIT_ENV: &str = "INTOPS_KAFKA_PROMPT_FETCH_WAIT_MS";

/// The values [`PROMPT_FETCH_WAIT_ENV`] accepts (milliseconds): at least
/// 1, at most the background pace's 500.
pub const PROMPT_FETCH_WAIT_RANGE: std::ops::RangeInclusive<u32> = 1..=500;

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option values can be credentials (sasl.password): print keys only.
        f.debug_struct("KafkaSettings")
            .field("bootstrap", &self.bootstrap)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("instance_id", &self.instance_id)
            .field("prompt_wait_ms", &self.prompt_wait_ms)
            .finish()
    }
}

impl KafkaSettings {
    /// Settings for `bootstrap` with extra librdkafka `options`, refusing
    /// the keys typed settings own.
    pub fn new(
        bootstrap: impl Into<String>,
        options: BTreeMap<String, String>,
    ) -> Result<Self, KafkaError> {
        let refused: Vec<_> = options
            .keys()
            .filter(|k| OWNED.contains(&k.as_str()))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(KafkaError::Config(format!(
                "options {} are set by intops itself and cannot be passed through{}",
                refused.join(", "),
                if refused.iter().any(|k| k == "group.instance.id") {
                    format!(" (set {INSTANCE_ID_ENV} for group.instance.id)")
                } else {
                    String::new()
                }
            )));
        }
        Ok(Self {
            bootstrap: bootstrap.into(),
            options,
            instance_id: None,
            prompt_wait_ms: None,
        })
    }

    /// The prompt consumers' fetch wait in milliseconds instead of
    /// [`Pace::Prompt`]'s default.
    pub fn with_prompt_wait_ms(mut self, ms: u32) -> Self {
        self.prompt_wait_ms = Some(ms);
        self
    }

    /// `fetch.wait.max.ms` of a consumer at `pace`.
    pub fn fetch_wait_ms(&self, pace: Pace) -> u32 {
        match pace {
            Pace::Prompt => self.prompt_wait_ms.unwrap_or(pace.fetch_wait_ms()),
            Pace::Background => pace.fetch_wait_ms(),
        }
    }

    /// Makes every consumer group member built from these settings a
    /// static member with `id` (see [`INSTANCE_ID_ENV`]); `None` for
    /// dynamic membership. Ids are at most 249 characters of ASCII
    /// letters, digits, `.`, `_` and `-`, as Kafka requires.
    pub fn with_instance_id(mut self, id: Option<String>) -> Result<Self, KafkaError> {
        let id = id.map(|i| i.trim().to_string()).filter(|i| !i.is_empty());
        if let Some(id) = &id {
            let valid = id.len() <= MAX_INSTANCE_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid {
                return Err(KafkaError::Config(format!(
                    "{INSTANCE_ID_ENV} must be at most {MAX_INSTANCE_ID_LEN} characters of letters, digits, '.', '_' and '-'"
                )));
            }
        }
        self.instance_id = id;
        Ok(self)
    }

    /// The static membership id, when configured.
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    /// Settings with the pass-through options and the prompt fetch wait
    /// ([`PROMPT_FETCH_WAIT_ENV`]) found in `vars` (usually
    /// `std::env::vars()`).
    pub fn from_env(
        bootstrap: impl Into<String>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, KafkaError> {
        let mut prompt_wait = None;
        let mut options = BTreeMap::new();
        for (k, v) in vars {
            if k == PROMPT_FETCH_WAIT_ENV {
                // 0 would have every idle consumer poll the broker without
                // pause; above the background pace it is no longer prompt.
                prompt_wait = Some(
                    v.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|ms| PROMPT_FETCH_WAIT_RANGE.contains(ms))
                        .ok_or_else(|| {
                            KafkaError::Config(format!(
                                "{PROMPT_FETCH_WAIT_ENV} must be a whole number of milliseconds from {} to {}, got {v:?}",
                                PROMPT_FETCH_WAIT_RANGE.start(),
                                PROMPT_FETCH_WAIT_RANGE.end()
                            ))
                        })?,
                );
            } else if let Some(name) = k.strip_prefix(OPTION_ENV_PREFIX) {
                options.insert(name.to_ascii_lowercase().replace('_', "."), v);
            }
        }
        let settings = Self::new(bootstrap, options)?;
        Ok(match prompt_wait {
            Some(ms) => settings.with_prompt_wait_ms(ms),
            None => settings,
        })
    }

    /// The bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        // IPv4 first: the local broker advertises 127.0.0.1 only.
        c.set("broker.address.family", "v4");
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// Producer settings: every record acknowledged by all in-sync
    /// replicas, idempotent, retried by librdkafka for up to the delivery
    /// timeout.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("linger.ms", "5");
        c.set("message.timeout.ms", "30000");
        merge(&mut c, self.base());
        c.set("message.max.bytes", MAX_RECORD_BYTES.to_string());
        c.set("acks", "all");
        c.set("enable.idempotence", "true");
        c
    }

    /// Consumer settings for `group`: offsets are stored by intops only
    /// after processing (at least once) and committed in the background.
    /// With an instance id, a member of `group` is a static member (see
    /// [`INSTANCE_ID_ENV`]); readers that only assign partitions or fetch
    /// offsets never join, so the id does not matter to them.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("auto.offset.reset", "earliest");
        c.set("session.timeout.ms", "10000");
        c.set("heartbeat.interval.ms", "1000");
        c.set("auto.commit.interval.ms", "1000");
        // On the pipeline's path: see [`Pace::Prompt`].
        c.set(
            "fetch.wait.max.ms",
            self.fetch_wait_ms(Pace::Prompt).to_string(),
        );
        merge(&mut c, self.base());
        c.set("group.id", group);
        if let Some(id) = &self.instance_id {
            // Unique within each group: every process has at most one
            // member per group, and groups are per stage (and target).
            c.set("group.instance.id", id);
        }
        c.set("enable.auto.commit", "true");
        c.set("enable.auto.offset.store", "false");
        c
    }

    /// Admin client settings.
    pub fn admin_config(&self) -> ClientConfig {
        self.base()
    }

    /// Settings of a group-less reader ([`crate::scan::Scan`]): a fresh
    /// group id it never joins, nothing committed, a fetch wait by `pace`;
    /// a reset (records gone to retention) moves to `auto_offset_reset`
    /// (`earliest` or `latest`). Pass-through options override the
    /// defaults, as for every other client.
    pub fn scan_config(&self, auto_offset_reset: &str, pace: Pace) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("fetch.wait.max.ms", self.fetch_wait_ms(pace).to_string());
        c.set("auto.offset.reset", auto_offset_reset);
        merge(&mut c, self.base());
        c.set("group.id", format!("intops-scan-{}", uuid::Uuid::now_v7()));
        c.set("enable.auto.commit", "false");
        c.set("enable.auto.offset.store", "false");
        c
    }
}

/// How long a consumer's fetch may wait at the broker for records
/// (`fetch.wait.max.ms`). Kafka answers a waiting fetch as soon as records
/// arrive, so there this is only how often an idle consumer asks again.
/// tansu 0.6 holds every fetch for the whole wait, records or not, and
/// reads every assigned partition at least twice per fetch (about four
/// times at 500 ms, where it sleeps half the remainder while 250 ms or
/// more are left): the wait is each hop's
/// latency (between one and two waits), and what an idle reader costs the
/// broker grows with its partitions over the wait (measured in
/// docs/benchmarks.md, trade-off in docs/operations.md).
/// [`PROMPT_FETCH_WAIT_ENV`] sets the prompt wait; a pass-through option
/// (`INTOPS_KAFKA_OPTION_FETCH_WAIT_MAX_MS`) overrides both paces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// On the path of an event (transform's and delivery's consumers) or
    /// an operator waiting for an answer: 10 ms.
    Prompt,
    /// A reader that may lag by a second (the monitor, delivery's links
    /// follower): 500 ms, librdkafka's default.
    Background,
}

impl Pace {
    /// `fetch.wait.max.ms` of this pace.
    pub fn fetch_wait_ms(self) -> u32 {
        match self {
            Pace::Prompt => 10,
            Pace::Background => 500,
        }
    }
}

fn merge(into: &mut ClientConfig, from: ClientConfig) {
    for (k, v) in from.config_map() {
        into.set(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_takes_pass_through_options_but_never_commits() {
        let s = KafkaSettings::from_env(
            "b:9092",
            [(
                "INTOPS_KAFKA_OPTION_FETCH_WAIT_MAX_MS".to_string(),
                "400".to_string(),
            )],
        )
        .expect("settings");
        let c = s.scan_config("earliest", Pace::Background);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("400"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert!(
            c.get("group.id")
                .is_some_and(|g| g.starts_with("intops-scan-"))
        );
        let defaults = KafkaSettings::new("b:9092", Default::default()).expect("settings");
        assert_eq!(
            defaults
                .scan_config("latest", Pace::Prompt)
                .get("fetch.wait.max.ms"),
            Some("10")
        );
        assert_eq!(
            defaults
                .scan_config("latest", Pace::Background)
                .get("fetch.wait.max.ms"),
            Some("500")
        );
    }

    #[test]
    fn the_prompt_wait_is_a_setting_of_its_own() {
        let s = KafkaSettings::from_env(
            "b:9092",
            [(PROMPT_FETCH_WAIT_ENV.to_string(), "50".to_string())],
        )
        .expect("settings");
        assert_eq!(s.consumer_config("g").get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(
            s.scan_config("latest", Pace::Prompt)
                .get("fetch.wait.max.ms"),
            Some("50")
        );
        assert_eq!(
            s.scan_config("latest", Pace::Background)
                .get("fetch.wait.max.ms"),
            Some("500"),
            "background readers keep theirs"
        );
        let e = KafkaSettings::from_env(
            "b:9092",
            [(PROMPT_FETCH_WAIT_ENV.to_string(), "fast".to_string())],
        )
        .expect_err("not a number");
        assert!(e.to_string().contains(PROMPT_FETCH_WAIT_ENV), "{e}");
        for out_of_range in ["0", "501", "60000"] {
            let e = KafkaSettings::from_env(
                "b:9092",
                [(PROMPT_FETCH_WAIT_ENV.to_string(), out_of_range.to_string())],
            )
            .expect_err("out of range");
            assert!(e.to_string().contains("from 1 to 500"), "{e}");
        }
        for edge in ["1", "500"] {
            KafkaSettings::from_env("b:9092", [(PROMPT_FETCH_WAIT_ENV.to_string(), edge.into())])
                .expect("in range");
        }
    }

    #[test]
    fn pass_through_options_come_from_env_names() {
        let s = KafkaSettings::from_env(
            "b:9092",
            [
                (
                    "INTOPS_KAFKA_OPTION_SECURITY_PROTOCOL".to_string(),
                    "SASL_SSL".to_string(),
                ),
                (
                    "INTOPS_KAFKA_OPTION_SASL_PASSWORD".to_string(),
                    "hunter2".to_string(),
                ),
                ("HOME".to_string(), "/root".to_string()),
            ],
        )
        .expect("valid");
        let c = s.producer_config();
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("acks"), Some("all"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn owned_keys_are_refused() {
        let e = KafkaSettings::from_env(
            "b",
            [(
                "INTOPS_KAFKA_OPTION_ENABLE_AUTO_COMMIT".to_string(),
                "true".to_string(),
            )],
        )
        .expect_err("owned");
        assert!(e.to_string().contains("enable.auto.commit"), "{e}");
    }

    #[test]
    fn consumer_never_auto_stores_offsets() {
        let s = KafkaSettings::new("b", BTreeMap::new()).expect("valid");
        let c = s.consumer_config("g");
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("group.id"), Some("g"));
    }

    #[test]
    fn instance_id_makes_group_members_static() {
        let dynamic = KafkaSettings::new("b", BTreeMap::new()).expect("valid");
        assert_eq!(dynamic.consumer_config("g").get("group.instance.id"), None);
        let fixed = dynamic
            .clone()
            .with_instance_id(Some("intops-transform-7d9f-x2k".into()))
            .expect("valid");
        assert_eq!(
            fixed.consumer_config("g").get("group.instance.id"),
            Some("intops-transform-7d9f-x2k")
        );
        assert_eq!(fixed.producer_config().get("group.instance.id"), None);
        let blank = dynamic
            .with_instance_id(Some(" ".into()))
            .expect("blank is unset");
        assert_eq!(blank.instance_id(), None);
    }

    #[test]
    fn bad_instance_ids_and_pass_through_are_refused() {
        let e = KafkaSettings::new("b", BTreeMap::new())
            .and_then(|s| s.with_instance_id(Some("a b".into())))
            .expect_err("space");
        assert!(e.to_string().contains(INSTANCE_ID_ENV), "{e}");
        let e = KafkaSettings::from_env(
            "b",
            [(
                "INTOPS_KAFKA_OPTION_GROUP_INSTANCE_ID".to_string(),
                "x".to_string(),
            )],
        )
        .expect_err("owned");
        assert!(e.to_string().contains(INSTANCE_ID_ENV), "{e}");
    }

    fn settings(pairs: &[(&str, &str)]) -> KafkaSettings {
        KafkaSettings::from_env(
            "broker:9093",
            pairs
                .iter()
                .map(|(k, v)| (format!("{OPTION_ENV_PREFIX}{k}"), v.to_string())),
        )
        .expect("valid")
    }

    /// TLS and SASL (PLAIN, SCRAM) need librdkafka built with OpenSSL:
    /// without it, creating a client with these options fails.
    #[test]
    fn tls_and_sasl_options_build_every_client() {
        use rdkafka::consumer::BaseConsumer;
        use rdkafka::producer::FutureProducer;
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let s = settings(&[
                ("SECURITY_PROTOCOL", "SASL_SSL"),
                ("SASL_MECHANISM", mechanism),
                ("SASL_USERNAME", "intops"),
                ("SASL_PASSWORD", "secret"),
            ]);
            let _: FutureProducer = s
                .producer_config()
                .create()
                .unwrap_or_else(|e| panic!("producer with {mechanism}: {e}"));
            let _: BaseConsumer = s
                .consumer_config("g")
                .create()
                .unwrap_or_else(|e| panic!("consumer with {mechanism}: {e}"));
            let _: BaseConsumer = s
                .admin_config()
                .create()
                .unwrap_or_else(|e| panic!("admin with {mechanism}: {e}"));
        }
        let tls = settings(&[
            ("SECURITY_PROTOCOL", "SSL"),
            ("SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "https"),
        ]);
        assert_eq!(
            tls.producer_config()
                .get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
        let _: FutureProducer = tls.producer_config().create().expect("tls producer");
    }
}
