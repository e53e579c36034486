//! From TOML text to validated [`Flows`], with every problem reported at once.
//!
//! This file holds the entry points, the error types and the checks every
//! part shares; each part of the file is validated in its own module:
//! `sources`, `targets`, `flows` and `alerts`.

mod alerts;
mod flows;
mod sources;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use intops_jq::JqProgram;

use crate::model::{Flows, RateLimit};
use crate::spec::FlowsFile;

/// One problem in a flows file, located by a path such as
/// `flows[snow-p1-to-jira].map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Where the problem is.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem found in a flows file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "flows file has {} problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Reads and validates the flows file at `path`.
pub fn load_file(path: &Path) -> Result<Flows, LoadErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadErrors(vec![LoadError {
            at: path.display().to_string(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    load_str_in(&text, path.parent())
}

/// [`load_file`] for a service starting up: every problem, prefixed with
/// the file's path, as an [`intops_runtime::ConfigError`] (exit code 2).
pub fn load_flows(path: &Path) -> Result<Flows, intops_runtime::ConfigError> {
    load_file(path).map_err(|e| {
        intops_runtime::ConfigError(
            e.0.iter()
                .map(|p| {
                    let file = path.display().to_string();
                    // A file that cannot be read is already named by its path.
                    if p.at == file {
                        p.to_string()
                    } else {
                        format!("{file}: {p}")
                    }
                })
                .collect(),
        )
    })
}

/// Validates flows-file text (a lookup table's `file` is read relative
/// to the working directory: see [`load_str_in`]).
pub fn load_str(text: &str) -> Result<Flows, LoadErrors> {
    load_str_in(text, None)
}

/// Validates flows-file text whose lookup tables' files are relative to
/// `dir` (the flows file's directory).
pub fn load_str_in(text: &str, dir: Option<&Path>) -> Result<Flows, LoadErrors> {
    let table = expand_str_in(text, dir)?;
    let tables = tables(&table);
    let file: FlowsFile = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            LoadErrors(vec![LoadError {
                at: "toml".into(),
                message: e.to_string().trim_end().to_string(),
            }])
        })?;
    let mut v = Validator::default();
    let sources = v.sources(&file.sources);
    let targets = v.targets(&file.targets);
    let flows = v.flows(&file.flows, &sources, &targets);
    let alerts = v.alerts(&file.alerts);
    if v.errors.is_empty() {
        Ok(Flows {
            tables,
            fields_read: crate::route::fields_read(&flows),
            sources,
            targets,
            flows,
            alerts,
        })
    } else {
        Err(LoadErrors(v.errors))
    }
}

/// The flows file as TOML with its templates instantiated for every
/// tenant and its lookup tables in the programs that use them: what
/// `intops flows expand` prints. Not validated further.
pub fn expand_str_in(text: &str, dir: Option<&Path>) -> Result<toml::Table, LoadErrors> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        LoadErrors(vec![LoadError {
            at: "toml".into(),
            message: e.to_string().trim_end().to_string(),
        }])
    })?;
    read_table_files(&mut table, dir)?;
    crate::expand::expand(table).map_err(LoadErrors)
}

/// Reads each `[[tables]]` entry's `file` (CSV) into its `rows`.
fn read_table_files(file: &mut toml::Table, dir: Option<&Path>) -> Result<(), LoadErrors> {
    let Some(toml::Value::Array(tables)) = file.get_mut("tables") else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for table in tables.iter_mut().filter_map(toml::Value::as_table_mut) {
        let Some(name) = table.get("file").and_then(toml::Value::as_str) else {
            continue;
        };
        let id = table
            .get("id")
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .to_string();
        let path = dir.map_or_else(|| Path::new(name).to_path_buf(), |d| d.join(name));
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| crate::expand::csv_rows(&text));
        match read {
            Ok(rows) => {
                table.insert("rows".into(), toml::Value::Table(rows));
            }
            Err(e) => errors.push(LoadError {
                at: format!("tables[{id}].file"),
                message: e,
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LoadErrors(errors))
    }
}

/// Each source's and target's table as canonical TOML, by `sources.<id>`
/// and `targets.<id>` (see [`Flows::changed`]).
fn tables(file: &toml::Table) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for kind in ["sources", "targets"] {
        let Some(toml::Value::Array(tables)) = file.get(kind) else {
            continue;
        };
        for table in tables {
            if let (Some(id), Ok(text)) = (
                table.get("id").and_then(toml::Value::as_str),
                toml::to_string(table),
            ) {
                out.insert(format!("{kind}.{id}"), text);
            }
        }
    }
    out
}

#[derive(Default)]
struct Validator {
    errors: Vec<LoadError>,
}

impl Validator {
    fn error(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.errors.push(LoadError {
            at: at.into(),
            message: message.into(),
        });
    }

    fn jq(&mut self, at: String, code: &str) -> Option<JqProgram> {
        JqProgram::compile(code)
            .map_err(|e| self.error(at, e.to_string()))
            .ok()
    }

    /// Reads a `redact` list; each path that is not plain is an error.
    fn redact(&mut self, at: &str, paths: &[String]) -> Vec<crate::redact::FieldPath> {
        let mut out = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            match crate::redact::FieldPath::parse(p) {
                Ok(path) => out.push(path),
                Err(e) => self.error(format!("{at}.redact[{i}]"), e),
            }
        }
        out
    }

    /// Compiles an optional program: `Some(None)` when absent, `None` when
    /// it does not compile (the error is recorded).
    fn optional_jq(&mut self, at: String, code: Option<&str>) -> Option<Option<JqProgram>> {
        match code {
            None => Some(None),
            Some(code) => self.jq(at, code).map(Some),
        }
    }

    fn duration(&mut self, at: String, text: Option<&str>, default: Duration) -> Duration {
        match text.map(humantime::parse_duration) {
            None => default,
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => {
                self.error(at, "must be greater than zero");
                default
            }
            Some(Err(e)) => {
                self.error(
                    at,
                    format!("not a duration ({e}); write for example \"10s\" or \"200ms\""),
                );
                default
            }
        }
    }

    fn id(&mut self, kind: &str, index: usize, id: &str, seen: &mut HashSet<String>) -> String {
        let at = format!("{kind}[{index}].id");
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.error(
                &at,
                format!("{id:?} must be non-empty and use only letters, digits, '-', '_' and '.'"),
            );
        } else if !seen.insert(id.to_string()) {
            self.error(&at, format!("duplicate id {id:?}"));
        }
        format!("{kind}[{id}]")
    }
}

/// An HTTP header name: one or more token characters (RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses `50/s`, `600/m`, `1000/h`.
fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let bad = || format!("{text:?} is not a rate; write for example \"50/s\" or \"600/m\"");
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!(
            "{text:?} allows nothing; the count must be at least 1"
        ));
    }
    Ok(RateLimit { count, per })
}
