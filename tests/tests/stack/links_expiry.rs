//! Issue 16 scenario (being written).
