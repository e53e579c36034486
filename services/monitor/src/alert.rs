//! Alert webhooks: a flow's health change is posted to every configured
//! webhook, Slack-style (`{"text": ..}`) or generic (the change's fields).
//! Per flow and webhook, a status already announced is not announced again
//! (de-duplication), and after an alert the next one waits for the cooldown;
//! the flow's latest status is then sent if it still differs, so a
//! recovery is always reported and flapping is compressed. Sends are
//! retried with backoff and counted; a failure never stops the monitor.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use backon::Retryable;
use intops_flows::Alert;
use intops_flows::spec::AlertKind;
use intops_kafka::backoff::retry_delays;
use intops_runtime::metrics as m;
use intops_runtime::reload::Shared;
use intops_runtime::{CancellationToken, Secret};
use serde_json::json;
use tokio::sync::mpsc;

use crate::health::{Change, Status};

/// A webhook with its resolved URL.
#[derive(Debug)]
pub(crate) struct Webhook {
    id: String,
    kind: AlertKind,
    url: Secret,
    cooldown: Duration,
    /// Only changes of this tenant's flows.
    tenant: Option<String>,
}

impl Webhook {
    /// Resolves the URL's secret reference; the error names the reference,
    /// never the value.
    pub(crate) fn resolve(alert: &Alert) -> Result<Self, String> {
        let url = alert
            .url
            .resolve()
            .map_err(|e| format!("alerts[{}].url: {e}", alert.id))?;
        Ok(Self {
            id: alert.id.clone(),
            kind: alert.kind,
            url,
            cooldown: alert.cooldown,
            tenant: alert.tenant.clone(),
        })
    }
}

impl Webhook {
    /// Whether this webhook hears about `change` (its tenant filter).
    fn wants(&self, change: &Change) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| change.owner.tenant.as_ref() == Some(t))
    }
}

#[derive(Debug, Default)]
struct Announced {
    status: Option<Status>,
    at: Option<Instant>,
    pending: Option<Change>,
}

impl Announced {
    /// The change to announce at `now`, if any: nothing when the latest
    /// status was already announced; the latest one kept for later while
    /// the cooldown since the last alert runs.
    fn due(&mut self, cooldown: Duration, now: Instant) -> Option<Change> {
        let mut change = self.pending.take()?;
        let announced = self.status.unwrap_or(Status::Healthy);
        if announced == change.to {
            return None; // nothing new to say
        }
        if self.at.is_some_and(|at| now.duration_since(at) < cooldown) {
            self.pending = Some(change); // later
            return None;
        }
        change.from = announced;
        self.status = Some(change.to);
        self.at = Some(now);
        Some(change)
    }
}

/// Posts the changes from `changes` until `shutdown`.
pub(crate) async fn run(
    webhooks: Shared<Vec<Webhook>>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    monitor_url: String,
    shutdown: CancellationToken,
) {
    let http = match client() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the alert webhooks' http client; alerts are off");
            return;
        }
    };
    // By webhook id and flow: a reload that keeps a webhook keeps what it
    // announced.
    let mut state: HashMap<(String, String), Announced> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = changes.recv() => match change {
                Some(change) => {
                    for webhook in webhooks.load().iter().filter(|w| w.wants(&change)) {
                        state.entry((webhook.id.clone(), change.flow_id.clone())).or_default().pending = Some(change.clone());
                    }
                }
                None => return,
            },
            _ = tick.tick() => {}
        }
        let current = webhooks.load();
        for ((id, _), announced) in &mut state {
            let Some(webhook) = current.iter().find(|w| &w.id == id) else {
                continue; // removed by a reload
            };
            let Some(change) = announced.due(webhook.cooldown, Instant::now()) else {
                continue;
            };
            let body = body(webhook.kind, &change, &monitor_url);
            let (http, url, id) = (
                http.clone(),
                webhook.url.expose().to_string(),
                webhook.id.clone(),
            );
            tokio::spawn(async move { send(&http, &url, &id, body).await });
        }
    }
}

/// The alert webhooks' HTTP client. A redirect is never followed (the
/// alert, and a token in the webhook URL, must not go to another host): it
/// is an error, so the alert counts as failed.
fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            attempt.error("redirects are not followed")
        }))
        .user_agent(concat!("intops-monitor/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn send(http: &reqwest::Client, url: &str, id: &str, body: serde_json::Value) {
    let attempt = || async {
        http.post(url)
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
    };
    let result = attempt
        .retry(retry_delays(Duration::from_millis(500), Duration::from_secs(30)).take(5))
        .await;
    let outcome = match &result {
        Ok(_) => "sent",
        Err(_) => "failed",
    };
    metrics::counter!(m::ALERTS, "webhook" => id.to_string(), "result" => outcome).increment(1);
    if let Err(e) = result {
        // The URL may hold a token: log the webhook's id and status only.
        tracing::warn!(webhook = %id, status = ?e.status(), "alert not delivered after retries");
    }
}

fn body(kind: AlertKind, change: &Change, monitor_url: &str) -> serde_json::Value {
    let recovered = change.to == Status::Healthy;
    match kind {
        AlertKind::Slack => {
            let text = if recovered {
                format!(
                    ":white_check_mark: intops flow `{}` (target `{}`) is healthy again (was {}). {monitor_url}",
                    change.flow_id,
                    change.target_id,
                    change.from.as_str()
                )
            } else {
                format!(
                    ":rotating_light: intops flow `{}` (target `{}`) is {}: {}. {monitor_url}",
                    change.flow_id,
                    change.target_id,
                    change.to.as_str(),
                    change.reason
                )
            };
            let text = match (&change.owner.owner, &change.owner.tenant) {
                (Some(owner), Some(tenant)) => format!("{text} Owner: {owner} (tenant {tenant})."),
                (Some(owner), None) => format!("{text} Owner: {owner}."),
                (None, Some(tenant)) => format!("{text} Tenant: {tenant}."),
                (None, None) => text,
            };
            json!({ "text": text })
        }
        AlertKind::Generic => json!({
            "source": "intops-monitor",
            "owner": change.owner.owner,
            "tenant": change.owner.tenant,
            "flow_id": change.flow_id,
            "target_id": change.target_id,
            "status": change.to.as_str(),
            "previous_status": change.from.as_str(),
            "recovered": recovered,
            "reason": change.reason,
            "monitor": monitor_url,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(to: Status) -> Change {
        Change {
            owner: crate::health::Owner::default(),
            flow_id: "f".into(),
            target_id: "crm".into(),
            from: Status::Healthy,
            to,
            reason: "success ratio 0.00 below 0.9".into(),
        }
    }

    #[test]
    fn one_alert_per_status_and_the_latest_after_the_cooldown() {
        let cooldown = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut a = Announced {
            pending: Some(change(Status::Healthy)),
            ..Announced::default()
        };
        assert!(
            a.due(cooldown, t0).is_none(),
            "healthy from the start: nothing to say"
        );
        a.pending = Some(change(Status::Failing));
        assert_eq!(a.due(cooldown, t0).map(|c| c.to), Some(Status::Failing));
        a.pending = Some(change(Status::Failing));
        assert!(a.due(cooldown, t0).is_none(), "already announced");
        // Flapping inside the cooldown: held, and only the latest counts.
        a.pending = Some(change(Status::Healthy));
        assert!(a.due(cooldown, t0 + Duration::from_secs(10)).is_none());
        a.pending = Some(change(Status::Degraded));
        assert!(a.due(cooldown, t0 + Duration::from_secs(20)).is_none());
        let later = a
            .due(cooldown, t0 + Duration::from_secs(61))
            .expect("after the cooldown");
        assert_eq!((later.from, later.to), (Status::Failing, Status::Degraded));
        // A recovery after the cooldown is always reported.
        a.pending = Some(change(Status::Healthy));
        let recovery = a
            .due(cooldown, t0 + Duration::from_secs(200))
            .expect("recovery");
        assert_eq!(
            (recovery.from, recovery.to),
            (Status::Degraded, Status::Healthy)
        );
    }

    #[test]
    fn bodies_say_what_changed() {
        let slack = body(AlertKind::Slack, &change(Status::Failing), "http://m");
        let text = slack["text"].as_str().expect("text");
        assert!(
            text.contains("`f`") && text.contains("failing") && text.contains("0.00 below 0.9"),
            "{text}"
        );
        let generic = body(AlertKind::Generic, &change(Status::Healthy), "http://m");
        assert_eq!(generic["status"], "healthy");
        assert_eq!(generic["recovered"], true);
    }

    /// A webhook answering 307 to another host: the alert is not sent
    /// there, and the answer is an error (the alert failed).
    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        async fn serve(router: axum::Router) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move { axum::serve(listener, router).await });
            format!("http://{addr}")
        }
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let other = serve(axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }))
        .await;
        let location = format!("{other}/stolen");
        let hook = serve(axum::Router::new().fallback(move || {
            let location = location.clone();
            async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, location)],
                )
            }
        }))
        .await;
        let result = client()
            .expect("client")
            .post(format!("{hook}/hook"))
            .json(&serde_json::json!({"text": "x"}))
            .send()
            .await;
        assert!(result.expect_err("a redirect is an error").is_redirect());
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the other host got nothing");
    }

    /// An alert names who answers for the flow, and its tenant.
    #[test]
    fn alerts_name_the_owner_and_tenant() {
        let mut c = change(Status::Failing);
        c.owner = crate::health::Owner {
            tenant: Some("acme".into()),
            owner: Some("acme service desk".into()),
            ..Default::default()
        };
        let generic = body(AlertKind::Generic, &c, "http://monitor/");
        assert_eq!(generic["owner"], "acme service desk");
        assert_eq!(generic["tenant"], "acme");
        let slack = body(AlertKind::Slack, &c, "http://monitor/");
        let text = slack["text"].as_str().unwrap_or_default();
        assert!(
            text.ends_with("Owner: acme service desk (tenant acme)."),
            "{text}"
        );
    }

    /// A webhook with a tenant filter hears only that tenant's flows.
    #[test]
    fn a_tenant_filter_keeps_other_tenants_out() {
        let flows = intops_flows::load_str(
            "[[alerts]]\nid = \"acme\"\nkind = \"generic\"\nurl = { env = \"PATH\" }\ntenant = \"acme\"\n",
        )
        .expect("valid");
        let hook = Webhook::resolve(&flows.alerts[0]).expect("resolves");
        let mut c = change(Status::Failing);
        assert!(!hook.wants(&c), "a flow of no tenant");
        c.owner.tenant = Some("globex".into());
        assert!(!hook.wants(&c));
        c.owner.tenant = Some("acme".into());
        assert!(hook.wants(&c));
    }
}
