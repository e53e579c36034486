//! Reading Prometheus metrics: a service's `/metrics`, or the recorder of
//! services running in this process.

use std::net::SocketAddr;

/// The sum of the samples at `addr`'s `/metrics` whose line starts with
/// `line_start` (a metric name, optionally with its labels); 0 when none.
pub async fn sum(addr: SocketAddr, line_start: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    sum_lines(&response.text().await.unwrap_or_default(), line_start)
}

/// [`sum`] over the metrics of the services started in this process.
pub fn sum_in_process(line_start: &str) -> f64 {
    intops_runtime::metrics::install()
        .map(|handle| sum_lines(&handle.render(), line_start))
        .unwrap_or(0.0)
}

fn sum_lines(text: &str, line_start: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
