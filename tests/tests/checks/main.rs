//! Checks that need no stack and no service running: the documentation,
//! the dashboards and the shipped schemas agree with the code. Always run
//! by `cargo test --workspace`.
//!
//! docs_operations runs `intops --help`: the binary cargo builds for the
//! intops-cli package's own tests (`INTOPS_BIN_DIR`, default
//! target/debug).

mod docs_operations;
mod observability_files;
mod schemas;
