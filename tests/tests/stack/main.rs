//! The end-to-end tests against the real local stack (broker at
//! `INTOPS_KAFKA_BOOTSTRAP`, registry at `INTOPS_SCHEMA_REGISTRY_URL`), one
//! module per scenario, in one test binary. Behind the `stack` feature:
//! deploy/local/test.sh starts the stack, builds the service binaries and
//! runs `cargo test --workspace --features intops-tests/stack`; a plain
//! `cargo test --workspace` leaves them out.
//!
//! One scenario: `cargo test -p intops-tests --features stack --test stack
//! -- delivery_crash::` (with the stack running and the variables
//! deploy/local/test.sh exports, see docs/testing.md).
//!
//! All scenarios share this process and its metrics recorder: a test that
//! reads a labelled series from `/metrics` uses target, flow and source ids
//! no other module uses (see docs/testing.md).

mod console_api;
mod console_browser;
mod delivery_circuit;
mod delivery_crash;
mod delivery_pause;
mod delivery_policy;
mod delivery_reload;
mod delivery_scale_out;
mod dlq_replay;
mod fault_suite;
mod flows_change;
mod ingest_api;
mod ingest_poll;
mod ingest_reload;
mod interop_confluent;
mod links_conversation;
mod links_crash;
mod links_echo;
mod links_expiry;
mod links_rebalance;
mod links_replay;
mod monitor_drift;
mod monitor_health;
mod monitor_page;
mod monitor_reload;
mod pipeline_e2e;
mod rebalance_drain;
mod schemas_registry;
mod sla_report;
mod stack_restart;
mod static_membership;
mod tenants_example;
mod tenants_isolation;
mod topics_plan;
mod transform_cap;
mod transform_crash;
mod transform_reload;
