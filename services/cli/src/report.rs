//! `intops report`: a tenant's service report over a period, from the
//! hourly rollups the monitor keeps on `<prefix>.rollups` (400 days).

mod csv;
mod figures;
mod html;

use std::process::ExitCode;

use intops_events::HourlyRollup;
use intops_kafka::{ServiceContext, latest};

#[cfg(test)]
use figures::Report;
use figures::report;

const DAY_MICROS: i64 = 24 * 3_600_000_000;

/// The output forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Html,
}

/// What `intops report` takes.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The tenant (its id in the flows file).
    #[arg(long)]
    pub tenant: String,
    /// First day (`2026-11-01`, UTC), or an RFC 3339 instant, or a
    /// duration ago (`30d`).
    #[arg(long)]
    pub from: String,
    /// Last day, included (`2026-11-30`), or an RFC 3339 instant or a
    /// duration ago, excluded.
    #[arg(long)]
    pub to: String,
    /// json (one object), csv (one table), or html (a page to send).
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

/// A bound: a date is its day's start (`inclusive_day`: the next day's).
fn bound(text: &str, inclusive_day: bool) -> Result<i64, String> {
    let is_date = text.len() == 10 && text.as_bytes().get(4) == Some(&b'-');
    if is_date {
        let start = crate::when::parse(&format!("{text}T00:00:00Z"))
            .map_err(|_| format!("{text:?} is not a date (2026-11-01)"))?;
        return Ok(if inclusive_day {
            start + DAY_MICROS
        } else {
            start
        });
    }
    crate::when::parse(text)
}

/// Prints the report; exit 0, or 2 for bad arguments.
pub async fn run(ctx: &ServiceContext, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let (from, to) = match (bound(&args.from, false), bound(&args.to, true)) {
        (Ok(from), Ok(to)) if from < to => (from, to),
        (Ok(_), Ok(_)) => {
            eprintln!("error: --from must be before --to");
            return Ok(ExitCode::from(2));
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let rollups: Vec<HourlyRollup> = latest::read(ctx, &ctx.topics.rollups())
        .await?
        .into_values()
        .collect();
    let whole = report(&args.tenant, from, to, rollups.iter().cloned());
    if whole.flows.is_empty() && whole.events == 0 {
        eprintln!(
            "warning: no figures for tenant {:?} from {} to {} on {}",
            args.tenant,
            whole.from,
            whole.to,
            ctx.topics.rollups()
        );
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&whole)?),
        Format::Html => print!("{}", html::render(&whole)),
        Format::Csv => {
            let mut daily = Vec::new();
            let mut day = from;
            while day < to {
                let end = (day + DAY_MICROS).min(to);
                daily.push(report(&args.tenant, day, end, rollups.iter().cloned()));
                day = end;
            }
            print!("{}", csv::render(&whole, &daily));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
