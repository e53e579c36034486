//! Validates a flow's `link` and `update` tables, and where `$link` may be
//! used: in a capture flow's `map` and `update` (`path`, `headers`, `map`),
//! and in a from flow's `path`, `headers` and `map`. Anywhere else it is a
//! load error, since no value is known there (a `when` runs before
//! delivery looks the link up; a capture flow's create has none).

use std::collections::HashSet;

use intops_jq::JqProgram;

use super::super::Validator;
use crate::model::{DEFAULT_LINK_EXPIRY, FlowLink, LINK_VAR, Target, Update};
use crate::spec::FlowSpec;
use crate::template::Template;

/// The jq variable of a capture program: the answer's headers.
const HEADERS_VAR: &str = "headers";

/// Whether `$link` may be used in a program or template, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkUse {
    /// `$link` is known here.
    Allowed,
    /// A flow's condition.
    When,
    /// A capture flow's create request (path and headers).
    Create,
    /// A flow without `link`.
    NoLink,
}

/// Where a flow may use `$link`.
pub(super) struct FlowUses {
    /// In its `map`.
    pub(super) map: LinkUse,
    /// In its `path` and `headers`.
    pub(super) request: LinkUse,
}

impl LinkUse {
    /// Where `f` may use `$link`.
    pub(super) fn of(f: &FlowSpec) -> FlowUses {
        match f
            .link
            .as_ref()
            .map(|l| (l.capture.is_some(), l.from.is_some()))
        {
            None => FlowUses {
                map: Self::NoLink,
                request: Self::NoLink,
            },
            Some((true, false)) => FlowUses {
                map: Self::Allowed,
                request: Self::Create,
            },
            // A from flow, or an invalid link (reported on its own).
            Some(_) => FlowUses {
                map: Self::Allowed,
                request: Self::Allowed,
            },
        }
    }

    /// The variables a program compiled here knows.
    fn vars(self) -> &'static [&'static str] {
        match self {
            Self::Allowed => &[LINK_VAR],
            _ => &[],
        }
    }

    /// Why `$link` cannot be used here.
    fn why(self) -> Option<&'static str> {
        match self {
            Self::Allowed => None,
            Self::When => Some(
                "`$link` is not known when `when` is evaluated; use it in a capture flow's map and update, or in a from flow's path, headers and map",
            ),
            Self::Create => Some(
                "`$link` is not known in a capture flow's create request; use it in update.path, update.headers or update.map",
            ),
            Self::NoLink => Some(
                "`$link` needs a link: add link = { capture = \"<jq>\" } or link = { from = \"<flow id>\" }",
            ),
        }
    }
}

/// The ids of the flows with `link.capture`, the flows a `from` may name.
pub(super) fn capture_flows(specs: &[FlowSpec]) -> HashSet<&str> {
    specs
        .iter()
        .filter(|f| f.link.as_ref().is_some_and(|l| l.capture.is_some()))
        .map(|f| f.id.as_str())
        .collect()
}

impl Validator {
    /// Compiles a program of a flow; `$link` is a variable where `link`
    /// allows it, and otherwise an error that says why.
    pub(super) fn link_jq(&mut self, at: String, code: &str, link: LinkUse) -> Option<JqProgram> {
        JqProgram::compile_with_vars(code, link.vars())
            .map_err(|e| {
                let fixed = JqProgram::compile_with_vars(code, &[LINK_VAR]).is_ok();
                self.error(at, with_why(e.to_string(), fixed, link));
            })
            .ok()
    }

    /// [`link_jq`](Self::link_jq) for a path or header template.
    pub(super) fn link_template(
        &mut self,
        at: String,
        text: &str,
        link: LinkUse,
    ) -> Option<Template> {
        Template::compile_with_vars(text, link.vars())
            .map_err(|e| {
                let fixed = Template::compile_with_vars(text, &[LINK_VAR]).is_ok();
                self.error(at, with_why(e.to_string(), fixed, link));
            })
            .ok()
    }

    /// The flow's `link` and `update`: `Some(None)` without a link, `None`
    /// when invalid (the errors are recorded). `captures`: the flows a
    /// `from` may name.
    pub(super) fn link(
        &mut self,
        at: &str,
        f: &FlowSpec,
        target: Option<&Target>,
        captures: &HashSet<&str>,
    ) -> Option<Option<FlowLink>> {
        let Some(spec) = &f.link else {
            if f.update.is_some() {
                self.error(
                    format!("{at}.update"),
                    "needs link.capture: only a flow that keeps the target's record id can update it",
                );
                return None;
            }
            return Some(None);
        };
        let expire_after = self.duration(
            format!("{at}.link.expire_after"),
            spec.expire_after.as_deref(),
            DEFAULT_LINK_EXPIRY,
        );
        let skip_echoes = spec.echo.unwrap_or(true);
        match (&spec.capture, &spec.from) {
            (Some(capture), None) => {
                let capture = JqProgram::compile_with_vars(capture, &[HEADERS_VAR])
                    .map_err(|e| self.error(format!("{at}.link.capture"), e.to_string()))
                    .ok();
                let update = self.update(at, f, target);
                Some(Some(FlowLink::Capture {
                    capture: capture?,
                    update: Box::new(update?),
                    expire_after,
                    skip_echoes,
                }))
            }
            (None, Some(from)) => {
                if f.update.is_some() {
                    self.error(
                        format!("{at}.update"),
                        "needs link.capture: a from flow writes back along another flow's links and has no update",
                    );
                }
                if !captures.contains(from.as_str()) {
                    self.error(
                        format!("{at}.link.from"),
                        format!("{from:?} names no flow with link.capture"),
                    );
                    return None;
                }
                f.update.is_none().then(|| {
                    Some(FlowLink::From {
                        flow: from.clone(),
                        expire_after,
                        skip_echoes,
                    })
                })
            }
            _ => {
                self.error(
                    format!("{at}.link"),
                    "needs exactly one of capture (keep the target's record id) and from (follow another flow's links back)",
                );
                None
            }
        }
    }

    /// A capture flow's `update`: the request once the link exists.
    fn update(&mut self, at: &str, f: &FlowSpec, target: Option<&Target>) -> Option<Update> {
        let Some(spec) = &f.update else {
            self.error(
                format!("{at}.link"),
                "link.capture needs an update: the request sent once the record exists, for example update = { method = \"PUT\", path = \"/items/{{ $link }}\" }",
            );
            return None;
        };
        let at = format!("{at}.update");
        let method = self.method(&at, spec.method.as_deref(), "PUT");
        let path = self.path(&format!("{at}.path"), &spec.path, LinkUse::Allowed);
        let headers = match &spec.headers {
            None => Some(None),
            Some(h) => self
                .headers(&format!("{at}.headers"), h, target, LinkUse::Allowed)
                .map(Some),
        };
        let map = match &spec.map {
            None => Some(None),
            Some(code) => self
                .link_jq(format!("{at}.map"), code, LinkUse::Allowed)
                .map(Some),
        };
        Some(Update {
            method,
            path: path?,
            headers: headers?,
            map: map?,
        })
    }
}

/// A compile error, with why `$link` cannot be used here when `$link` is
/// all that is wrong (`fixed`: the text compiles where `$link` is known).
fn with_why(error: String, fixed: bool, link: LinkUse) -> String {
    match link.why() {
        Some(why) if fixed => format!("{error}; {why}"),
        _ => error,
    }
}

#[cfg(test)]
mod tests;
