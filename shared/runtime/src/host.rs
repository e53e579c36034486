//! The name of the host (pod) a process runs on, for records that say who
//! did something (audit records, flow versions).

/// `$HOSTNAME`, else `/etc/hostname`, else `unknown`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
