//! docs/flows.md names every field of the flows file: the field lists come
//! from the config types themselves (serde's unknown-field error lists
//! every field a table accepts), so the reference cannot drift.

use intops_flows::spec::{
    AlertSpec, BasicAuthSpec, CircuitBreakerSpec, FlowSpec, FlowsFile, HeaderAuthSpec, PollSpec,
    RetrySpec, SloSpec, SourceAuthTable, SourceSpec, TargetAuthSpec, TargetSpec,
};
use serde::de::DeserializeOwned;

fn fields<T: DeserializeOwned>() -> Vec<String> {
    let err = match toml::from_str::<T>("zzz_not_a_field = 1") {
        Ok(_) => panic!("deny_unknown_fields is missing"),
        Err(e) => e.to_string(),
    };
    let list = err
        .split("expected")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in {err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_field_of_every_table_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/flows.md"))
        .expect("doc");
    let tables = [
        ("flows file", fields::<FlowsFile>()),
        ("[[sources]]", fields::<SourceSpec>()),
        ("sources auth", fields::<SourceAuthTable>()),
        ("sources poll", fields::<PollSpec>()),
        ("[[targets]]", fields::<TargetSpec>()),
        ("targets auth", fields::<TargetAuthSpec>()),
        ("targets retry", fields::<RetrySpec>()),
        ("targets auth basic", fields::<BasicAuthSpec>()),
        ("targets auth header", fields::<HeaderAuthSpec>()),
        ("targets circuit_breaker", fields::<CircuitBreakerSpec>()),
        ("[[flows]]", fields::<FlowSpec>()),
        ("flows slo", fields::<SloSpec>()),
        ("[[alerts]]", fields::<AlertSpec>()),
    ];
    let mut missing = Vec::new();
    for (table, names) in &tables {
        assert!(!names.is_empty(), "{table}: no fields parsed");
        for name in names {
            if !doc.contains(&format!("`{name}`")) {
                missing.push(format!("{table}: `{name}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/flows.md lacks:\n{}",
        missing.join("\n")
    );
}
