//! A request of a flow with links (`DeliveryRequest.link`): what to send
//! is decided here, when it is sent, from the links index.
//!
//! - `capture`: linked → the flow's `update` with the record id put in
//!   (`update`), skipped when it is exactly what was last written through
//!   the link (`echo`); not linked or pending → a pending link is written
//!   and acknowledged, then the create goes out (`create`; a pending link
//!   already there counts an uncertain create). A create's 2xx answer
//!   gives the record id through the `capture` program.
//! - `from`: the event's entity key is looked up as the followed flow's
//!   record id; none → not sent (`no_link`, outcome `unrouted`); found →
//!   sent with that link's entity key put in (`write_back`), unless it
//!   repeats this flow's last write for the entity (`echo`).
//!
//! After a 2xx the link is written with the request's digest
//! (`last_write`); that write is acknowledged before the record's offset
//! is stored (it is part of the handler's `Ack`).

use intops_events::{
    DeliveryRequest, IDEMPOTENCY_KEY, Link, LinkAction, LinkMode, LinkPlan, RecordKind, now_micros,
};
use intops_kafka::{Ack, ProcessError, Publish};
use intops_runtime::metrics as m;

use super::{Handler, shutting_down};
use crate::client::Attempt;
use crate::links::conflict::{self, Verdict, known};
use crate::links::{Entry, Write, digest, substitution};

/// What to do with a request of a flow with links.
pub(super) enum Decision {
    /// Send it as the step says.
    Send(Box<Step>),
    /// Do not send it: an echo, a conflict's losing echo (then `seen`
    /// is the link that records it), or a write-back without a link.
    Skip {
        action: LinkAction,
        record_id: Option<String>,
        seen: Option<Box<Link>>,
    },
    /// It cannot be sent (the link cannot go into it): dead-letter it.
    Refuse {
        action: LinkAction,
        record_id: Option<String>,
        reason: String,
    },
}

/// A request about to be sent through a link.
pub(super) struct Step {
    /// The request as sent (the update variant, the link put in).
    pub(super) request: DeliveryRequest,
    pub(super) action: LinkAction,
    /// The link's record id, when known before sending.
    pub(super) record_id: Option<String>,
    digest: u64,
    then: Then,
}

impl Step {
    /// Whether the answer is needed (a create's, for its `capture`).
    pub(super) fn keep_answer(&self) -> bool {
        matches!(self.then, Then::Capture { .. })
    }
}

/// The link written after a 2xx.
enum Then {
    /// Capture the record id with `code`.
    Capture {
        plan: LinkPlan,
        code: String,
        created_at: i64,
    },
    /// Refresh the capture link (`earlier`: its last write until now;
    /// `prior_seen`: its `seen_at`).
    Update {
        flow: String,
        created_at: i64,
        earlier: Write,
        prior_seen: i64,
    },
    /// Write this flow's own link, following `via`.
    WriteBack {
        via: String,
        created_at: i64,
        earlier: Write,
        prior_seen: i64,
    },
}

/// What a 2xx through a link left.
pub(super) struct Delivered {
    /// The link write, acknowledged before the offset.
    pub(super) link: Option<Ack>,
    /// The record id, when known.
    pub(super) record_id: Option<String>,
    /// Why the create's answer gave no record id.
    pub(super) error: Option<String>,
}

impl<P: Publish> Handler<P> {
    /// Decides what `request` (of a flow with `plan`) does.
    pub(super) async fn decide(
        &self,
        request: &DeliveryRequest,
        plan: &LinkPlan,
    ) -> Result<Decision, ProcessError> {
        match plan.mode {
            LinkMode::Capture => self.decide_capture(request, plan).await,
            LinkMode::From => Ok(self.decide_write_back(request, plan).await),
        }
    }

    async fn decide_capture(
        &self,
        request: &DeliveryRequest,
        plan: &LinkPlan,
    ) -> Result<Decision, ProcessError> {
        let flow = &plan.link_flow;
        let mut existing = self
            .links
            .lookup(flow, &request.entity_key, self.owned.as_deref())
            .await;
        let mut synced = false;
        while let Some(
            entry @ Entry {
                record_id: Some(record_id),
                ..
            },
        ) = &existing
        {
            match self.decide_update(request, plan, entry, record_id) {
                Judged::Final(decision) => return Ok(decision),
                Judged::WritesLink(decision) if synced => return Ok(decision),
                Judged::WritesLink(_) => {
                    // Not sent, but the link is written: with the latest
                    // of it (another member may have written it just
                    // before a rebalance), or a stale copy would win.
                    self.links.syncer.sync().await;
                    synced = true;
                    existing = self.links.index.lookup(flow, &request.entity_key);
                }
            }
        }
        if existing.is_some() {
            // An earlier create was sent and never confirmed: it may have
            // reached the target (at most one duplicate, same
            // Idempotency-Key).
            metrics::counter!(m::LINK_UNCERTAIN_CREATES, "flow" => flow.clone()).increment(1);
            tracing::warn!(flow = %flow, event_id = %request.event_id, "creating again after an unconfirmed create");
        }
        let now = now_micros();
        let created_at = existing.as_ref().map_or(now, |e| e.created_at);
        let pending = Link {
            tenant: request.tenant.clone(),
            flow_id: flow.clone(),
            mode: LinkMode::Capture,
            via_flow: None,
            entity_key: request.entity_key.clone(),
            target_id: request.target_id.clone(),
            record_id: None,
            event_id: request.event_id.clone(),
            last_write: None,
            created_at,
            updated_at: now,
            written_at: None,
            basis_at: None,
            seen_at: None,
            earlier_written_at: None,
            earlier_basis_at: None,
        };
        match self.write_link(pending).await {
            Ok(true) => {}
            Ok(false) => return Err(shutting_down("writing a pending link")),
            Err(e) => return Err(e.into()),
        }
        Ok(Decision::Send(Box::new(Step {
            request: request.clone(),
            action: LinkAction::Create,
            record_id: None,
            digest: digest::of(&request.method, &request.path, &request.body),
            then: Then::Capture {
                plan: plan.clone(),
                code: plan.capture.clone().unwrap_or_default(),
                created_at,
            },
        })))
    }

    /// A capture flow's request whose entity is linked to `record_id`:
    /// the update, an echo, or a conflict's losing echo.
    fn decide_update(
        &self,
        request: &DeliveryRequest,
        plan: &LinkPlan,
        entry: &Entry,
        record_id: &str,
    ) -> Judged {
        let sent = match update_variant(request, plan)
            .and_then(|u| substitution::request(&u, record_id).map_err(|e| e.to_string()))
        {
            Ok(sent) => sent,
            Err(reason) => {
                return Judged::Final(Decision::Refuse {
                    action: LinkAction::Update,
                    record_id: Some(record_id.to_string()),
                    reason,
                });
            }
        };
        let digest = digest::of(&sent.method, &sent.path, &sent.body);
        let verdict = if plan.skip_echoes {
            let into = self.links.write_backs_of(&plan.link_flow, record_id);
            conflict::judge(entry, &into, request.ingested_at)
        } else {
            Verdict::Clear
        };
        if plan.skip_echoes && entry.last_write == Some(digest) {
            return echo(entry, request, record_id, verdict);
        }
        if verdict.loses() {
            return Judged::WritesLink(conflict_skip(entry, request));
        }
        Judged::Final(Decision::Send(Box::new(Step {
            request: sent,
            action: LinkAction::Update,
            record_id: Some(record_id.to_string()),
            digest,
            then: Then::Update {
                flow: plan.link_flow.clone(),
                created_at: entry.created_at,
                earlier: entry.written,
                prior_seen: entry.seen_at,
            },
        })))
    }

    async fn decide_write_back(&self, request: &DeliveryRequest, plan: &LinkPlan) -> Decision {
        let mut followed = self
            .links
            .find_record(&plan.link_flow, &request.entity_key)
            .await;
        let mut own = self
            .links
            .index
            .lookup(&request.flow_id, &request.entity_key);
        let mut synced = false;
        loop {
            let Some(capture) = &followed else {
                return Decision::Skip {
                    action: LinkAction::NoLink,
                    record_id: None,
                    seen: None,
                };
            };
            match self.decide_back(request, plan, capture, own.as_ref()) {
                Judged::Final(decision) => return decision,
                Judged::WritesLink(decision) if synced => return decision,
                Judged::WritesLink(_) => {
                    self.links.syncer.sync().await;
                    synced = true;
                    followed = self
                        .links
                        .index
                        .find_record(&plan.link_flow, &request.entity_key);
                    own = self
                        .links
                        .index
                        .lookup(&request.flow_id, &request.entity_key);
                }
            }
        }
    }

    /// A write-back along `followed` (the capture link whose record this
    /// event's entity is), with this flow's own link `own`.
    fn decide_back(
        &self,
        request: &DeliveryRequest,
        plan: &LinkPlan,
        followed: &Entry,
        own: Option<&Entry>,
    ) -> Judged {
        let link = followed.entity_key.clone();
        let sent = match substitution::request(request, &link) {
            Ok(sent) => sent,
            Err(e) => {
                return Judged::Final(Decision::Refuse {
                    action: LinkAction::WriteBack,
                    record_id: Some(link),
                    reason: e.to_string(),
                });
            }
        };
        let digest = digest::of(&sent.method, &sent.path, &sent.body);
        // This flow's link to the same record (not one left from a record
        // the issue was linked to before).
        let own = own.filter(|o| o.record_id.as_deref() == Some(link.as_str()));
        let verdict = match own {
            Some(own) if plan.skip_echoes && !self.links.appends(&plan.link_flow) => {
                conflict::judge(own, std::slice::from_ref(followed), request.ingested_at)
            }
            _ => Verdict::Clear,
        };
        if let Some(own) = own
            && plan.skip_echoes
            && own.last_write == Some(digest)
        {
            return echo(own, request, &link, verdict);
        }
        if let Some(own) = own
            && verdict.loses()
        {
            return Judged::WritesLink(conflict_skip(own, request));
        }
        Judged::Final(Decision::Send(Box::new(Step {
            request: sent,
            action: LinkAction::WriteBack,
            record_id: Some(link),
            digest,
            then: Then::WriteBack {
                via: plan.link_flow.clone(),
                created_at: own.map_or_else(now_micros, |o| o.created_at),
                earlier: own.map_or_else(Write::default, |o| o.written),
                prior_seen: own.map_or(i64::MIN, |o| o.seen_at),
            },
        })))
    }

    /// After a 2xx (`last`, sent at `sent_at`) of `step` for `request`:
    /// the record id and the link write.
    pub(super) fn delivered(
        &self,
        request: &DeliveryRequest,
        step: Step,
        last: &Attempt,
        sent_at: i64,
    ) -> Delivered {
        let now = now_micros();
        let link = |flow_id: String,
                    mode,
                    via_flow,
                    record_id: String,
                    last_write,
                    created_at,
                    (earlier, prior_seen): (Write, i64)| Link {
            tenant: request.tenant.clone(),
            flow_id,
            mode,
            via_flow,
            entity_key: request.entity_key.clone(),
            target_id: request.target_id.clone(),
            record_id: Some(record_id),
            event_id: request.event_id.clone(),
            last_write: Some(digest::text(last_write)),
            created_at,
            updated_at: now,
            written_at: Some(sent_at),
            basis_at: seen_at(request),
            seen_at: conflict::later_seen(prior_seen, request),
            earlier_written_at: known(earlier.written_at),
            earlier_basis_at: known(earlier.basis_at),
        };
        match step.then {
            Then::Capture {
                plan,
                code,
                created_at,
            } => {
                let (body, headers) = match last {
                    Attempt::Delivered {
                        answer: Some(a), ..
                    } => (a.body.as_slice(), a.headers.as_slice()),
                    _ => (&[][..], &[][..]),
                };
                match self.links.captures.record_id(&code, body, headers) {
                    Ok(record_id) => {
                        // What the target now holds is what an update with
                        // this event would write: that update is an echo.
                        let last_write = update_variant(request, &plan)
                            .and_then(|u| {
                                substitution::request(&u, &record_id).map_err(|e| e.to_string())
                            })
                            .map_or(step.digest, |u| digest::of(&u.method, &u.path, &u.body));
                        let written = link(
                            plan.link_flow.clone(),
                            LinkMode::Capture,
                            None,
                            record_id.clone(),
                            last_write,
                            created_at,
                            (Write::default(), i64::MIN),
                        );
                        Delivered {
                            link: Some(self.link_ack(written)),
                            record_id: Some(record_id),
                            error: None,
                        }
                    }
                    Err(why) => {
                        // The reason may quote the answer, which a target
                        // may fill with what it was sent.
                        let why = self.target.credential.redact(&why);
                        metrics::counter!(m::LINK_CAPTURE_MISSING, "flow" => plan.link_flow.clone()).increment(1);
                        tracing::warn!(flow = %plan.link_flow, event_id = %request.event_id, why = %why, "capture found no record id in the answer");
                        Delivered {
                            link: None,
                            record_id: None,
                            error: Some(format!("capture found no record id in the answer: {why}")),
                        }
                    }
                }
            }
            Then::Update {
                flow,
                created_at,
                earlier,
                prior_seen,
            } => {
                let record_id = step.record_id.unwrap_or_default();
                let written = link(
                    flow,
                    LinkMode::Capture,
                    None,
                    record_id.clone(),
                    step.digest,
                    created_at,
                    (earlier, prior_seen),
                );
                Delivered {
                    link: Some(self.link_ack(written)),
                    record_id: Some(record_id),
                    error: None,
                }
            }
            Then::WriteBack {
                via,
                created_at,
                earlier,
                prior_seen,
            } => {
                let record_id = step.record_id.unwrap_or_default();
                let written = link(
                    request.flow_id.clone(),
                    LinkMode::From,
                    Some(via),
                    record_id.clone(),
                    step.digest,
                    created_at,
                    (earlier, prior_seen),
                );
                Delivered {
                    link: Some(self.link_ack(written)),
                    record_id: Some(record_id),
                    error: None,
                }
            }
        }
    }

    /// Applies `link` to the index at once and writes it; the returned
    /// acknowledgement retries while the broker is away.
    fn link_ack(&self, mut link: Link) -> Ack {
        self.links.index.write_local(&mut link);
        let key = Link::key_of(&link.flow_id, &link.entity_key).into_bytes();
        let topic = self.publisher.topics().links();
        self.write_record(topic, RecordKind::Link, key, link)
    }

    /// Writes the link that records a conflict's skipped echo.
    pub(super) fn seen_ack(&self, link: Link) -> Ack {
        self.link_ack(link)
    }

    /// [`Self::link_ack`], awaited: `Ok(false)` when shutdown came first.
    async fn write_link(&self, link: Link) -> Result<bool, intops_kafka::KafkaError> {
        self.link_ack(link).await
    }
}

/// The ingest time a link records for `request` (`None` when unknown).
fn seen_at(request: &DeliveryRequest) -> Option<i64> {
    (request.ingested_at > 0).then_some(request.ingested_at)
}

/// What a linked request's decision needs.
enum Judged {
    /// Decided.
    Final(Decision),
    /// Decided, writing the link without sending: made again with the
    /// index synced first.
    WritesLink(Decision),
}

/// `request` repeats what was last written through `link` (to record
/// `record_id`): an echo, not sent; after a crossing it records the event
/// as answered.
fn echo(link: &Entry, request: &DeliveryRequest, record_id: &str, verdict: Verdict) -> Judged {
    let decision = Decision::Skip {
        action: LinkAction::Echo,
        record_id: Some(record_id.to_string()),
        seen: verdict
            .crossed()
            .then(|| Box::new(conflict::answered(link, request))),
    };
    if verdict.crossed() {
        Judged::WritesLink(decision)
    } else {
        Judged::Final(decision)
    }
}

/// Not sending `request`, the losing echo of a conflict on `link`: the
/// link is written again with the event as its newest answered one, so
/// the next event of that side is taken as a change again.
fn conflict_skip(link: &Entry, request: &DeliveryRequest) -> Decision {
    tracing::info!(flow = %request.flow_id, event_id = %request.event_id, entity_key = %request.entity_key, "conflict: the other side's newer change wins, echo not sent");
    Decision::Skip {
        action: LinkAction::Conflict,
        record_id: link.record_id.clone(),
        seen: Some(Box::new(conflict::answered(link, request))),
    }
}

/// The update variant of a capture flow's request: the plan's method, path,
/// headers and body where given, else the request's; the request's own
/// `Idempotency-Key` (a rewind's) is kept.
fn update_variant(request: &DeliveryRequest, plan: &LinkPlan) -> Result<DeliveryRequest, String> {
    let Some(path) = &plan.update_path else {
        return Err("the flow's link has no update path".into());
    };
    let mut update = request.clone();
    update.path = path.clone();
    if let Some(method) = &plan.update_method {
        update.method = method.clone();
    }
    if let Some(headers) = &plan.update_headers {
        let own_key = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(IDEMPOTENCY_KEY))
            .map(|(k, v)| (k.clone(), v.clone()));
        update.headers = headers.clone();
        if let Some((k, v)) = own_key {
            update.headers.insert(k, v);
        }
    }
    if let Some(body) = &plan.update_body {
        update.body = body.clone();
    }
    Ok(update)
}

#[cfg(test)]
mod tests;
