//! Reading a service's Prometheus `/metrics`.

use std::net::SocketAddr;

/// The sum of the samples at `addr`'s `/metrics` whose line starts with
/// `line_start` (a metric name, optionally with its labels); 0 when none.
pub async fn sum(addr: SocketAddr, line_start: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
