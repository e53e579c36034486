//! Lookup tables (`[[tables]]`): named key → value maps, from inline rows
//! or a CSV file, overridable per tenant, read from jq as
//! `lookup("priority"; .priority; "Medium")`: the value of the key (as
//! text) in the table, or the default. A `when` or `map` that calls
//! `lookup` gets the function defined in front of it, with the tables of
//! its file (or its tenant) as a literal: a table's change changes the
//! versions of the flows that use it.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::error;
use crate::load::LoadError;

/// The tables by name: key → value.
#[derive(Debug, Clone, Default)]
pub(super) struct Tables {
    by_name: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl Tables {
    /// The file's `[[tables]]` (already read: CSV files are read by
    /// [`super::super::load`] into `rows`).
    pub fn from_file(tables: Vec<Table>, errors: &mut Vec<LoadError>) -> Self {
        let mut out = Tables::default();
        for (i, t) in tables.iter().enumerate() {
            let Some(id) = t.get("id").and_then(Value::as_str) else {
                errors.push(error(format!("tables[{i}].id"), "missing"));
                continue;
            };
            let at = format!("tables[{id}]");
            for key in t
                .keys()
                .filter(|k| !["id", "rows", "file", "description"].contains(&k.as_str()))
            {
                errors.push(error(format!("{at}.{key}"), "unknown field"));
            }
            if out.by_name.contains_key(id) {
                errors.push(error(
                    format!("tables[{i}].id"),
                    format!("duplicate id {id:?}"),
                ));
                continue;
            }
            match t.get("rows") {
                Some(Value::Table(rows)) => {
                    out.by_name.insert(id.to_string(), rows_of(rows));
                }
                _ => errors.push(error(
                    format!("{at}.rows"),
                    "give the rows: rows = { \"1\" = \"Highest\", ... } or file = \"table.csv\"",
                )),
            }
        }
        out
    }

    /// Replaces whole tables with a tenant's (`tables = { priority = {
    /// "1" = "P1" } }`).
    pub fn override_with(&mut self, at: &str, own: &Table, errors: &mut Vec<LoadError>) {
        for (name, rows) in own {
            if !self.by_name.contains_key(name) {
                errors.push(error(
                    format!("{at}.tables.{name}"),
                    "names no [[tables]] entry (a tenant overrides tables, it does not add them)",
                ));
                continue;
            }
            match rows {
                Value::Table(rows) => {
                    self.by_name.insert(name.clone(), rows_of(rows));
                }
                _ => errors.push(error(
                    format!("{at}.tables.{name}"),
                    "must be a table of rows",
                )),
            }
        }
    }

    /// Defines `lookup` in front of the flow's `when`, `map` and update
    /// `map` when they call it.
    pub fn apply(&self, flow: &mut Table) {
        let define = |program: Option<&mut Value>| {
            if let Some(Value::String(code)) = program
                && code.contains("lookup(")
            {
                *code = format!("{}{code}", self.prelude(code));
            }
        };
        define(flow.get_mut("when"));
        define(flow.get_mut("map"));
        if let Some(Value::Table(update)) = flow.get_mut("update") {
            define(update.get_mut("map"));
        }
    }

    /// The definition of `lookup` for `code`: with the tables it names
    /// as `lookup("<name>"; ...)` (every table when a name is not a
    /// literal), so a version changes only with the tables it uses.
    fn prelude(&self, code: &str) -> String {
        let named: Option<Vec<&str>> = code
            .match_indices("lookup(")
            .map(|(i, _)| {
                let rest = code[i + "lookup(".len()..].trim_start();
                let name = rest.strip_prefix('"')?;
                name.split('"').next()
            })
            .collect();
        let used: BTreeMap<&String, &BTreeMap<String, serde_json::Value>> = self
            .by_name
            .iter()
            .filter(|(name, _)| named.as_ref().is_none_or(|n| n.contains(&name.as_str())))
            .collect();
        let tables = serde_json::to_string(&used).unwrap_or_else(|_| "{}".into());
        format!(
            "def lookup($table; $key; $default): ({tables}[$table] // error(\"no lookup table \" + ($table | tostring))) as $rows | ($rows[$key | tostring] // $default); "
        )
    }
}

fn rows_of(rows: &Table) -> BTreeMap<String, serde_json::Value> {
    rows.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// The rows of a two-column CSV text (a header line first: `key,value`),
/// as a TOML table; a line without two columns is an error naming it.
pub fn csv_rows(text: &str) -> Result<Table, String> {
    let mut rows = Table::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(',') else {
            return Err(format!("line {}: expected key,value", n + 1));
        };
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        rows.insert(unquote(key), Value::String(unquote(value)));
    }
    Ok(rows)
}
