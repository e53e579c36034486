//! Templates and tenants (`[[templates]]`, `[[tenants]]`): one pattern of
//! sources, targets and flows written once with parameters, instantiated
//! per tenant into ordinary tables with ids `<tenant>.<id>`. Expansion
//! works on the TOML tree before validation, so an instance is exactly a
//! hand-written table (`intops flows expand` prints them) and every rule
//! of the flows file applies to it unchanged. Lookup tables (`[[tables]]`)
//! are turned into the jq function `lookup` here too ([`lookup`]).

mod lookup;
mod params;

pub use lookup::csv_rows;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::load::LoadError;

/// The kinds of entries a template holds, in the order they expand.
const KINDS: [&str; 3] = ["sources", "targets", "flows"];

/// Expands `file`'s templates into its `sources`, `targets` and `flows`
/// (and its lookup tables into the programs that use them), removing the
/// `templates`, `tenants` and `tables` keys; every problem is returned.
pub fn expand(mut file: Table) -> Result<Table, Vec<LoadError>> {
    let mut errors = Vec::new();
    let templates = take_array(&mut file, "templates", &mut errors);
    let tenants = take_array(&mut file, "tenants", &mut errors);
    let tables =
        lookup::Tables::from_file(take_array(&mut file, "tables", &mut errors), &mut errors);
    let mut by_id: BTreeMap<String, Table> = BTreeMap::new();
    for (i, template) in templates.into_iter().enumerate() {
        match template.get("id").and_then(Value::as_str) {
            Some(id) if !by_id.contains_key(id) => {
                by_id.insert(id.to_string(), template);
            }
            Some(id) => errors.push(error(
                format!("templates[{i}].id"),
                format!("duplicate id {id:?}"),
            )),
            None => errors.push(error(format!("templates[{i}].id"), "missing")),
        }
    }
    // The file's own flows use the file's tables.
    if let Some(Value::Array(flows)) = file.get_mut("flows") {
        for flow in flows.iter_mut().filter_map(Value::as_table_mut) {
            tables.apply(flow);
        }
    }
    let mut seen_tenants = std::collections::HashSet::new();
    for (i, tenant) in tenants.iter().enumerate() {
        if let Some(id) = tenant.get("id").and_then(Value::as_str)
            && !seen_tenants.insert(id.to_string())
        {
            errors.push(error(
                format!("tenants[{i}].id"),
                format!("duplicate id {id:?}"),
            ));
            continue;
        }
        let Some(instance) = Instance::of(i, tenant, &by_id, &tables, &mut errors) else {
            continue;
        };
        for kind in KINDS {
            for entry in instance.entries(kind, &mut errors) {
                push(&mut file, kind, entry);
            }
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// Whether `value` holds a `{ secret = "<name>" }` anywhere.
fn has_secret_placeholder(value: &Value) -> bool {
    match value {
        Value::Table(t) if t.len() == 1 && t.get("secret").is_some_and(Value::is_str) => true,
        Value::Table(t) => t.values().any(has_secret_placeholder),
        Value::Array(items) => items.iter().any(has_secret_placeholder),
        _ => false,
    }
}

fn error(at: impl Into<String>, message: impl Into<String>) -> LoadError {
    LoadError {
        at: at.into(),
        message: message.into(),
    }
}

/// Removes `key` from `file`: its tables (an error when it is not an
/// array of tables).
fn take_array(file: &mut Table, key: &str, errors: &mut Vec<LoadError>) -> Vec<Table> {
    match file.remove(key) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::Table(t) => Some(t),
                _ => {
                    errors.push(error(format!("{key}[{i}]"), "must be a table"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            errors.push(error(
                key,
                format!("must be an array of tables ([[{key}]])"),
            ));
            Vec::new()
        }
    }
}

fn push(file: &mut Table, kind: &str, entry: Table) {
    let list = file.entry(kind).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        items.push(Value::Table(entry));
    }
}

/// One tenant's instance of its template.
struct Instance<'a> {
    tenant: String,
    /// The tenant's `owner`, `description` and `tags`.
    tenant_meta: Table,
    /// The tenant's `quota` (events per period over all its sources).
    quota: Option<Value>,
    template: &'a Table,
    params: params::Params,
    secrets: Table,
    overrides: Table,
    tables: lookup::Tables,
}

impl<'a> Instance<'a> {
    fn of(
        i: usize,
        tenant: &Table,
        templates: &'a BTreeMap<String, Table>,
        tables: &lookup::Tables,
        errors: &mut Vec<LoadError>,
    ) -> Option<Self> {
        let Some(id) = tenant.get("id").and_then(Value::as_str) else {
            errors.push(error(format!("tenants[{i}].id"), "missing"));
            return None;
        };
        let at = format!("tenants[{id}]");
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            errors.push(error(
                format!("{at}.id"),
                "must be non-empty and use only letters, digits, '-' and '_'",
            ));
            return None;
        }
        let known = [
            "id",
            "template",
            "params",
            "secrets",
            "overrides",
            "tables",
            "owner",
            "description",
            "tags",
            "quota",
        ];
        for key in tenant.keys().filter(|k| !known.contains(&k.as_str())) {
            errors.push(error(format!("{at}.{key}"), "unknown field"));
        }
        let template_id = tenant
            .get("template")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(template) = templates.get(template_id) else {
            errors.push(error(
                format!("{at}.template"),
                format!("{template_id:?} names no [[templates]] entry"),
            ));
            return None;
        };
        let sub_table = |key: &str, errors: &mut Vec<LoadError>| match tenant.get(key) {
            None => Table::new(),
            Some(Value::Table(t)) => t.clone(),
            Some(_) => {
                errors.push(error(format!("{at}.{key}"), "must be a table"));
                Table::new()
            }
        };
        let params = params::Params::of(
            &at,
            template_id,
            template,
            &sub_table("params", errors),
            errors,
        )?;
        let mut own_tables = tables.clone();
        own_tables.override_with(&at, &sub_table("tables", errors), errors);
        let tenant_meta: Table = ["owner", "description", "tags"]
            .into_iter()
            .filter_map(|k| tenant.get(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let secrets = sub_table("secrets", errors);
        for (name, reference) in &secrets {
            // A reference, never a value: the value would reach flow
            // definitions, logs and error messages.
            let is_reference = reference.as_table().is_some_and(|t| {
                t.len() == 1
                    && (t.get("env").is_some_and(Value::is_str)
                        || t.get("file").is_some_and(Value::is_str))
            });
            if !is_reference {
                errors.push(error(
                    format!("{at}.secrets.{name}"),
                    "must be a secret reference: { env = \"VARIABLE\" } or { file = \"/path\" } (the value itself is never written in the flows file)",
                ));
            }
        }
        // Entries of the template no tenant can instantiate are mistakes.
        for key in template.keys().filter(|k| {
            ![
                "id",
                "params",
                "sources",
                "targets",
                "flows",
                "owner",
                "description",
                "tags",
            ]
            .contains(&k.as_str())
        }) {
            errors.push(error(
                format!("templates[{template_id}].{key}"),
                "unknown field",
            ));
        }
        let overrides = sub_table("overrides", errors);
        for (kind, entries) in &overrides {
            let Some(entries) = entries
                .as_table()
                .filter(|_| KINDS.contains(&kind.as_str()))
            else {
                errors.push(error(
                    format!("{at}.overrides.{kind}"),
                    "must be sources, targets or flows, each a table of entry ids",
                ));
                continue;
            };
            for (entry, fields) in entries {
                let exists = template
                    .get(kind)
                    .and_then(Value::as_array)
                    .is_some_and(|items| {
                        items
                            .iter()
                            .any(|i| i.get("id").and_then(Value::as_str) == Some(entry.as_str()))
                    });
                if !exists || !fields.is_table() {
                    errors.push(error(
                        format!("{at}.overrides.{kind}.{entry}"),
                        format!("template {template_id} has no {kind} entry {entry:?} (or the override is not a table)"),
                    ));
                }
            }
        }
        Some(Self {
            tenant: id.to_string(),
            tenant_meta,
            quota: tenant.get("quota").cloned(),
            template,
            params,
            secrets,
            overrides,
            tables: own_tables,
        })
    }

    /// The template's entries of `kind`, instantiated.
    fn entries(&self, kind: &str, errors: &mut Vec<LoadError>) -> Vec<Table> {
        let Some(Value::Array(items)) = self.template.get(kind) else {
            return Vec::new();
        };
        let at_tenant = format!("tenants[{}]", self.tenant);
        let mut out = Vec::new();
        for item in items {
            let Some(table) = item.as_table() else {
                continue;
            };
            let Some(id) = table.get("id").and_then(Value::as_str) else {
                errors.push(error(
                    format!("{at_tenant}: {kind}"),
                    "an entry of the template has no id",
                ));
                continue;
            };
            let at = format!("{at_tenant}: {kind}[{id}]");
            let mut entry = table.clone();
            if let Some(Value::Table(over)) = self
                .overrides
                .get(kind)
                .and_then(Value::as_table)
                .and_then(|t| t.get(id))
            {
                for (k, v) in over {
                    entry.insert(k.clone(), v.clone());
                }
            }
            let mut entry = Value::Table(entry);
            self.params.substitute(&at, &mut entry, errors);
            if kind == "flows" {
                if has_secret_placeholder(&entry) {
                    errors.push(error(
                        &at,
                        "a flow holds no secrets: put credentials in the target's auth",
                    ));
                }
            } else {
                self.secrets(&at, &mut entry, errors);
            }
            let Value::Table(mut entry) = entry else {
                continue;
            };
            self.prefix(kind, &mut entry);
            entry.insert("tenant".into(), Value::String(self.tenant.clone()));
            if kind == "sources"
                && let Some(quota) = &self.quota
            {
                entry.insert("tenant_quota".into(), quota.clone());
            }
            if kind == "flows" {
                self.tables.apply(&mut entry);
                self.owners(&mut entry);
            }
            out.push(entry);
        }
        out
    }

    /// A flow without its own `owner` or `description` takes the tenant's
    /// (else the template's); its `tags` are the template's, the tenant's
    /// and its own.
    fn owners(&self, flow: &mut Table) {
        for key in ["owner", "description"] {
            if !flow.contains_key(key)
                && let Some(v) = self.tenant_meta.get(key).or_else(|| self.template.get(key))
            {
                flow.insert(key.into(), v.clone());
            }
        }
        let mut tags: Vec<Value> = Vec::new();
        for from in [
            self.template.get("tags"),
            self.tenant_meta.get("tags"),
            flow.get("tags"),
        ] {
            for tag in from.and_then(Value::as_array).into_iter().flatten() {
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
        }
        if !tags.is_empty() {
            flow.insert("tags".into(), Value::Array(tags));
        }
    }

    /// `<tenant>.` before the entry's id and the ids it refers to.
    fn prefix(&self, kind: &str, entry: &mut Table) {
        let local = |v: &Value| {
            v.as_str()
                .map(|s| Value::String(format!("{}.{s}", self.tenant)))
        };
        let mut fields = vec!["id"];
        if kind == "flows" {
            fields.extend(["source", "target"]);
        }
        for field in fields {
            if let Some(v) = entry.get(field).and_then(local) {
                entry.insert(field.into(), v);
            }
        }
        if kind == "flows"
            && let Some(Value::Table(link)) = entry.get_mut("link")
            && let Some(v) = link.get("from").and_then(local)
        {
            link.insert("from".into(), v);
        }
    }

    /// Replaces every `{ secret = "<name>" }` with the tenant's reference
    /// of that name.
    fn secrets(&self, at: &str, value: &mut Value, errors: &mut Vec<LoadError>) {
        match value {
            Value::Table(t) if t.len() == 1 && t.get("secret").is_some_and(Value::is_str) => {
                let name = t.get("secret").and_then(Value::as_str).unwrap_or_default();
                match self.secrets.get(name) {
                    Some(reference) => *value = reference.clone(),
                    None => errors.push(error(
                        at,
                        format!(
                            "uses secret {name:?}, which tenant {} does not give in `secrets`",
                            self.tenant
                        ),
                    )),
                }
            }
            Value::Table(t) => {
                for (_, v) in t.iter_mut() {
                    self.secrets(at, v, errors);
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.secrets(at, v, errors);
                }
            }
            _ => {}
        }
    }
}
