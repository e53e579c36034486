//! A one-flow flows file for the monitor's unit tests: source `app`,
//! target `crm`, flow `app-to-crm` with `flow_extra` (an `slo = ..` line).

use intops_flows::Flows;

pub(crate) fn one_flow(flow_extra: &str) -> Flows {
    intops_flows::load_str(&format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "crm"
base_url = "http://crm"

[[flows]]
id = "app-to-crm"
source = "app"
target = "crm"
path = "/records"
{flow_extra}
"#
    ))
    .expect("flows")
}
