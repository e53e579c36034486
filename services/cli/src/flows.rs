//! `intops flows ...`.

use std::path::Path;
use std::process::ExitCode;

/// `intops flows check FILE`.
pub fn check(file: &Path) -> ExitCode {
    match intops_flows::load_file(file) {
        Ok(flows) => {
            println!(
                "{}: ok ({} sources, {} targets, {} flows)",
                file.display(),
                flows.sources.len(),
                flows.targets.len(),
                flows.flows.len()
            );
            for flow in &flows.flows {
                println!("  flow {} version {}", flow.id, flow.version);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}: {errors}", file.display());
            ExitCode::from(2)
        }
    }
}
