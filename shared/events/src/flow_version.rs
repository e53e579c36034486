//! The record of one flow version (`<prefix>.flow-versions`): which
//! definition a version hash stands for, and whether it is deployed.

use serde::{Deserialize, Serialize};

/// One version of one flow as a transform loaded it
/// (`<prefix>.flow-versions`, compacted, key [`FlowVersion::key_of`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowVersion {
    /// The flow's id.
    pub flow_id: String,
    /// The version hash (12 hex digits).
    pub version: String,
    /// The flow as a TOML `[[flows]]` table.
    pub definition: String,
    /// The flow's source.
    pub source_id: String,
    /// The flow's target.
    pub target_id: String,
    /// When a transform first loaded it.
    pub first_loaded_at: i64,
    /// That transform's host.
    pub first_loaded_by: String,
    /// When a transform last loaded a file with it.
    pub last_loaded_at: i64,
    /// That transform's host.
    pub last_loaded_by: String,
    /// Whether it is in the file a transform loaded last.
    pub current: bool,
}

impl FlowVersion {
    /// The record's key: `<flow_id>:<version>`.
    pub fn key_of(flow_id: &str, version: &str) -> String {
        format!("{flow_id}:{version}")
    }

    /// This record's key.
    pub fn key(&self) -> String {
        Self::key_of(&self.flow_id, &self.version)
    }
}
