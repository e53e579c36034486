//! Validates the `[[sources]]` tables: authentication, polling and limits.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::{Validator, parse_rate};
use crate::model::{HmacAuth, Poll, Source, SourceAuth};
use crate::spec::{SignatureEncoding, SourceAuthSpec, SourceKind, SourceSpec};

/// Default largest request body of a source: a one-record body this size
/// still fits in one Kafka record (producer `message.max.bytes` 1,000,000)
/// with 100,000 bytes left for the envelope, key and record overhead.
/// Ingest also checks each encoded record (docs/operations.md).
const DEFAULT_MAX_BODY: usize = 900_000;

impl Validator {
    pub(super) fn sources(&mut self, specs: &[SourceSpec]) -> BTreeMap<String, Source> {
        let mut seen = HashSet::new();
        let mut out = BTreeMap::new();
        for (i, s) in specs.iter().enumerate() {
            let at = self.id("sources", i, &s.id, &mut seen);
            let auth = match (s.kind, &s.auth) {
                // A polled source is not called by anyone: nothing to authenticate.
                (SourceKind::Poll, None) => Some(SourceAuth::None),
                _ => self.source_auth(&at, s),
            };
            let poll = self.poll(&at, s);
            let entity_key = self.jq(format!("{at}.entity_key"), &s.entity_key);
            let event_type = self.optional_jq(format!("{at}.event_type"), s.event_type.as_deref());
            let dedupe_key = self.optional_jq(format!("{at}.dedupe_key"), s.dedupe_key.as_deref());
            let max_body_bytes = s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
            if max_body_bytes == 0 {
                self.error(format!("{at}.max_body_bytes"), "must be at least 1");
            }
            let rate_limit = s.rate_limit.as_deref().and_then(|r| {
                parse_rate(r)
                    .map_err(|m| self.error(format!("{at}.rate_limit"), m))
                    .ok()
            });
            let tenant_quota = s.tenant_quota.as_deref().and_then(|r| {
                parse_rate(r)
                    .map_err(|m| self.error(format!("{at}.tenant_quota"), m))
                    .ok()
            });
            if tenant_quota.is_some() && s.tenant.is_none() {
                self.error(
                    format!("{at}.tenant_quota"),
                    "only a tenant's source has a tenant quota (set `quota` on the [[tenants]] entry)",
                );
            }
            let redact = self.redact(&at, &s.redact);
            if let (Some(auth), Some(entity_key), Some(event_type), Some(dedupe_key), Some(poll)) =
                (auth, entity_key, event_type, dedupe_key, poll)
            {
                out.insert(
                    s.id.clone(),
                    Source {
                        id: s.id.clone(),
                        tenant: s.tenant.clone(),
                        kind: s.kind,
                        auth,
                        entity_key,
                        event_type,
                        dedupe_key,
                        max_body_bytes,
                        rate_limit,
                        tenant_quota,
                        poll,
                        redact,
                    },
                );
            }
        }
        out
    }

    /// `Some(None)` for a webhook source, `Some(Some(poll))` for a valid
    /// polled one, `None` when invalid.
    fn poll(&mut self, at: &str, s: &SourceSpec) -> Option<Option<Poll>> {
        match (s.kind, &s.poll) {
            (SourceKind::Webhook, None) => Some(None),
            (SourceKind::Webhook, Some(_)) => {
                self.error(
                    format!("{at}.poll"),
                    "only sources of kind = \"poll\" take a poll table",
                );
                None
            }
            (SourceKind::Poll, None) => {
                self.error(
                    format!("{at}.poll"),
                    "missing: a polled source needs url, records and cursor",
                );
                None
            }
            (SourceKind::Poll, Some(p)) => {
                if s.dedupe_key.is_none() {
                    self.error(
                        format!("{at}.dedupe_key"),
                        "a polled source needs one, so overlapping windows never duplicate events",
                    );
                }
                if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                    self.error(
                        format!("{at}.poll.url"),
                        format!("{:?} must start with http:// or https://", p.url),
                    );
                }
                let interval = self.duration(
                    format!("{at}.poll.interval"),
                    p.interval.as_deref(),
                    Duration::from_secs(60),
                );
                let records = self.jq(format!("{at}.poll.records"), &p.records);
                let cursor = self.jq(format!("{at}.poll.cursor"), &p.cursor);
                let next = self.optional_jq(format!("{at}.poll.next"), p.next.as_deref());
                Some(Some(Poll {
                    url: p.url.clone(),
                    interval,
                    initial_cursor: p.initial_cursor.clone().unwrap_or_default(),
                    records: records?,
                    cursor: cursor?,
                    next: next?,
                    headers: p.headers.clone(),
                }))
            }
        }
    }

    fn source_auth(&mut self, at: &str, s: &SourceSpec) -> Option<SourceAuth> {
        match &s.auth {
            None => {
                self.error(
                    format!("{at}.auth"),
                    "missing: set an hmac_sha256 secret, or auth = \"none\" to accept unauthenticated requests",
                );
                None
            }
            Some(SourceAuthSpec::Keyword(k)) if k == "none" => Some(SourceAuth::None),
            Some(SourceAuthSpec::Keyword(k)) => {
                self.error(
                    format!("{at}.auth"),
                    format!("{k:?} is not \"none\" or a table"),
                );
                None
            }
            Some(SourceAuthSpec::Table(t)) => {
                let secret = match (t.hmac_sha256.clone(), t.bearer.clone()) {
                    (Some(secret), None) => secret,
                    (None, Some(token)) => {
                        let extra = t.header.is_some()
                            || t.encoding.is_some()
                            || t.prefix.is_some()
                            || t.timestamp_header.is_some()
                            || t.tolerance.is_some();
                        if extra {
                            self.error(format!("{at}.auth"), "header, encoding, prefix, timestamp_header and tolerance apply to hmac_sha256 only");
                        }
                        return Some(SourceAuth::Bearer(token));
                    }
                    (Some(_), Some(_)) => {
                        self.error(format!("{at}.auth"), "set hmac_sha256 or bearer, not both");
                        return None;
                    }
                    (None, None) => {
                        self.error(
                            format!("{at}.auth"),
                            "needs hmac_sha256 or bearer = { env = \"NAME\" } or { file = \"PATH\" }",
                        );
                        return None;
                    }
                };
                let tolerance = self.duration(
                    format!("{at}.auth.tolerance"),
                    t.tolerance.as_deref(),
                    Duration::from_secs(300),
                );
                let header = t
                    .header
                    .clone()
                    .unwrap_or_else(|| "X-Intops-Signature".into());
                let default_prefix = if t.header.is_none() { "sha256=" } else { "" };
                Some(SourceAuth::Hmac(HmacAuth {
                    secret,
                    header,
                    encoding: t.encoding.unwrap_or(SignatureEncoding::Hex),
                    prefix: t.prefix.clone().unwrap_or_else(|| default_prefix.into()),
                    timestamp_header: t.timestamp_header.clone(),
                    tolerance,
                }))
            }
        }
    }
}
