//! Reading Prometheus metrics: a service's `/metrics`, or the recorder of
//! services running in this process.
//!
//! A series that is not there reads as `None`, never as 0: a check that a
//! gauge is 0 must not pass because the endpoint is down or the series was
//! never exported. Where "not exported yet" legitimately means zero, say so
//! with [`absent_or_zero`], which still needs the endpoint to answer.

use std::net::SocketAddr;

/// The text of `addr`'s `/metrics`; `None` when it does not answer 2xx.
pub async fn scrape(addr: SocketAddr) -> Option<String> {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
    response.error_for_status().ok()?.text().await.ok()
}

/// The sum of the samples at `addr`'s `/metrics` whose line starts with
/// `line_start` (a metric name, optionally with its labels); `None` when
/// the endpoint does not answer or no such series is exported.
pub async fn sum(addr: SocketAddr, line_start: &str) -> Option<f64> {
    sum_lines(&scrape(addr).await?, line_start)
}

/// True when `addr`'s `/metrics` answers and the series starting with
/// `line_start` is either not exported or sums to 0; false when the
/// endpoint does not answer.
pub async fn absent_or_zero(addr: SocketAddr, line_start: &str) -> bool {
    scrape(addr)
        .await
        .is_some_and(|text| sum_lines(&text, line_start).unwrap_or(0.0) == 0.0)
}

/// [`sum`] over the metrics of the services started in this process.
pub fn sum_in_process(line_start: &str) -> Option<f64> {
    sum_lines(&intops_runtime::metrics::install()?.render(), line_start)
}

fn sum_lines(text: &str, line_start: &str) -> Option<f64> {
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::{absent_or_zero, sum, sum_lines};

    const TEXT: &str = "# TYPE intops_x gauge\nintops_x{flow=\"a\"} 0\nintops_x{flow=\"b\"} 2\n";

    #[test]
    fn a_missing_series_is_none_and_a_zero_one_is_zero() {
        assert_eq!(sum_lines(TEXT, "intops_y"), None);
        assert_eq!(sum_lines("", "intops_x"), None);
        assert_eq!(sum_lines(TEXT, r#"intops_x{flow="a"}"#), Some(0.0));
        assert_eq!(sum_lines(TEXT, "intops_x{"), Some(2.0));
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_neither_a_value_nor_absent_or_zero() {
        // Nothing listens on port 1.
        let dead = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(sum(dead, "intops_x").await, None);
        assert!(!absent_or_zero(dead, "intops_x").await);
    }
}
