//! Tests of templates, tenants and lookup tables.

use crate::load_str;

const FILE: &str = r#"
[[templates]]
id = "snow-to-jira"
params = ["jira_url", "project"]
owner = "integration team"
tags = ["itsm"]

  [[templates.sources]]
  id = "servicenow"
  kind = "webhook"
  auth = { hmac_sha256 = { secret = "snow" } }
  entity_key = ".sys_id"

  [[templates.targets]]
  id = "jira"
  base_url = "{{ $params.jira_url }}"

  [[templates.flows]]
  id = "p1"
  source = "servicenow"
  when = '.priority == "1"'
  target = "jira"
  path = "/rest/api/3/issue"
  map = '{fields: {project: {key: $params.project}, summary: .short_description, priority: {name: lookup("priority"; .priority; "Medium")}}}'

[[tables]]
id = "priority"
rows = { "1" = "Highest", "2" = "High" }

[[tenants]]
id = "acme"
template = "snow-to-jira"
params = { jira_url = "https://acme.example", project = "ACME" }
secrets = { snow = { env = "ACME_SNOW_SECRET" } }
owner = "acme service desk"
tags = ["customer:acme"]

[[tenants]]
id = "globex"
template = "snow-to-jira"
params = { jira_url = "https://globex.example", project = "GLX" }
secrets = { snow = { file = "/run/secrets/globex-snow" } }
tables = { priority = { "1" = "Blocker" } }
"#;

fn event(payload: &str) -> intops_events::IntegrationEvent {
    intops_events::IntegrationEvent {
        tenant: None,
        event_id: "e".into(),
        source_id: String::new(),
        event_type: "created".into(),
        entity_key: "k".into(),
        occurred_at: 0,
        ingested_at: 0,
        correlation_id: None,
        attributes: Default::default(),
        payload: payload.into(),
    }
}

/// Each tenant gets the template's sources, targets and flows under
/// `<tenant>.<id>`, with its parameters, secrets and tables.
#[test]
fn every_tenant_gets_its_own_instances() {
    let flows = load_str(FILE).expect("valid");
    let ids: Vec<&str> = flows.flows.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["acme.p1", "globex.p1"]);
    assert!(flows.sources.contains_key("acme.servicenow"));
    assert_eq!(
        flows.targets["globex.jira"].base_url,
        "https://globex.example"
    );
    assert_eq!(flows.flows[0].tenant.as_deref(), Some("acme"));
    assert_eq!(flows.flows[0].source, "acme.servicenow");
    assert_eq!(flows.flows[1].target, "globex.jira");
    assert_ne!(flows.flows[0].version, flows.flows[1].version);

    let payload = r#"{"sys_id": "s1", "priority": "1", "short_description": "down"}"#;
    let body = |flow: usize, source: &str| {
        let mut e = event(payload);
        e.source_id = source.into();
        let request = crate::route::plan_flow(&flows.flows[flow], &e)
            .expect("maps")
            .expect("routed");
        serde_json::from_str::<serde_json::Value>(&request.body).expect("json")
    };
    let acme = body(0, "acme.servicenow");
    assert_eq!(acme["fields"]["project"]["key"], "ACME");
    assert_eq!(acme["fields"]["priority"]["name"], "Highest");
    let globex = body(1, "globex.servicenow");
    assert_eq!(globex["fields"]["project"]["key"], "GLX");
    assert_eq!(
        globex["fields"]["priority"]["name"], "Blocker",
        "the tenant's table"
    );
}

/// Changing the template changes every tenant's flow versions.
#[test]
fn a_template_change_changes_every_instance() {
    let a = load_str(FILE).expect("valid");
    let b = load_str(&FILE.replace("/rest/api/3/issue", "/rest/api/2/issue")).expect("valid");
    for (x, y) in a.flows.iter().zip(&b.flows) {
        assert_ne!(x.version, y.version, "{}", x.id);
    }
}

/// Problems name the tenant and the parameter (or secret).
#[test]
fn problems_name_the_tenant_and_parameter() {
    let missing = FILE.replace(r#", project = "GLX" }"#, " }");
    let e = load_str(&missing).expect_err("invalid").to_string();
    assert!(
        e.contains("tenants[globex].params.project: required by template snow-to-jira"),
        "{e}"
    );

    let unknown = FILE.replace("$params.project", "$params.projekt");
    let e = load_str(&unknown).expect_err("invalid").to_string();
    assert!(
        e.contains("tenants[acme]: flows[p1]: uses $params.projekt"),
        "{e}"
    );

    let secret = FILE.replace(r#"secrets = { snow = { env = "ACME_SNOW_SECRET" } }"#, "");
    let e = load_str(&secret).expect_err("invalid").to_string();
    assert!(
        e.contains("tenants[acme]: sources[servicenow]: uses secret \"snow\""),
        "{e}"
    );

    let template = FILE.replace(
        r#"template = "snow-to-jira"
params = { jira_url = "https://acme.example""#,
        r#"template = "nosuch"
params = { jira_url = "https://acme.example""#,
    );
    let e = load_str(&template).expect_err("invalid").to_string();
    assert!(
        e.contains("tenants[acme].template: \"nosuch\" names no [[templates]] entry"),
        "{e}"
    );
}

/// A lookup's default answers keys the table lacks; a missing table is a
/// mapping error.
#[test]
fn lookups_default_and_a_missing_table_is_an_error() {
    let any_priority = FILE.replace(r#"when = '.priority == "1"'"#, "");
    let run = |file: &str, payload: &str| {
        let flows = load_str(file).expect("valid");
        let mut e = event(payload);
        e.source_id = "acme.servicenow".into();
        crate::route::plan_flow(&flows.flows[0], &e).map(|r| r.map(|r| r.body))
    };
    let body = run(
        &any_priority,
        r#"{"sys_id": "s1", "priority": "3", "short_description": "x"}"#,
    )
    .expect("maps")
    .expect("routed");
    assert!(body.contains(r#""name":"Medium""#), "{body}");
    let missing = any_priority.replace(r#"lookup("priority""#, r#"lookup("prio""#);
    let error = run(&missing, r#"{"sys_id": "s1", "priority": "1"}"#).expect_err("no such table");
    assert!(
        error.to_string().contains("no lookup table prio"),
        "{error}"
    );
}

/// A flow's owner is its own, else its tenant's, else its template's; its
/// tags are all of theirs; neither changes its version.
#[test]
fn owners_and_tags_come_down_to_the_instances() {
    let flows = load_str(FILE).expect("valid");
    let (acme, globex) = (&flows.flows[0], &flows.flows[1]);
    assert_eq!(acme.owner.as_deref(), Some("acme service desk"));
    assert_eq!(acme.tags, ["itsm", "customer:acme"]);
    assert_eq!(globex.owner.as_deref(), Some("integration team"));
    assert_eq!(globex.tags, ["itsm"]);
    let renamed = load_str(&FILE.replace("acme service desk", "acme ops")).expect("valid");
    assert_eq!(renamed.flows[0].version, acme.version);
}

/// A tenant's secrets are references, never values; a flow holds none;
/// overrides, tables and template fields that name nothing are errors.
#[test]
fn mistakes_are_reported_not_ignored() {
    let value = FILE.replace(
        r#"secrets = { snow = { env = "ACME_SNOW_SECRET" } }"#,
        r#"secrets = { snow = "s3cret-value" }"#,
    );
    let e = load_str(&value).expect_err("invalid").to_string();
    assert!(
        e.contains("tenants[acme].secrets.snow: must be a secret reference"),
        "{e}"
    );
    assert!(!e.contains("s3cret-value"), "the value never appears: {e}");

    let in_flow = FILE.replace(
        r#"path = "/rest/api/3/issue""#,
        "path = \"/rest/api/3/issue\"\n  headers = { X-Key = { secret = \"snow\" } }",
    );
    let e = load_str(&in_flow).expect_err("invalid").to_string();
    assert!(e.contains("flows[p1]: a flow holds no secrets"), "{e}");

    let overrides = FILE.replace(
        r#"tables = { priority = { "1" = "Blocker" } }"#,
        r#"overrides = { targets = { jra = { concurrency = 2 } } }"#,
    );
    let e = load_str(&overrides).expect_err("invalid").to_string();
    assert!(
        e.contains(
            "tenants[globex].overrides.targets.jra: template snow-to-jira has no targets entry"
        ),
        "{e}"
    );

    let table = FILE.replace(r#"tables = { priority"#, r#"tables = { prio"#);
    let e = load_str(&table).expect_err("invalid").to_string();
    assert!(
        e.contains("tenants[globex].tables.prio: names no [[tables]] entry"),
        "{e}"
    );

    let nested = FILE.replace("$params.project", "$params.project.key");
    let e = load_str(&nested).expect_err("invalid").to_string();
    assert!(e.contains("uses $params.project."), "{e}");
}

/// A program carries only the tables it names: another table's change
/// leaves its version alone.
#[test]
fn a_program_carries_only_the_tables_it_names() {
    let two = FILE.replace(
        "[[tenants]]\nid = \"acme\"",
        "[[tables]]\nid = \"state\"\nrows = { \"1\" = \"New\" }\n\n[[tenants]]\nid = \"acme\"",
    );
    let a = load_str(&two).expect("valid");
    let b = load_str(&two.replace(r#""1" = "New""#, r#""1" = "Open""#)).expect("valid");
    assert_eq!(a.flows[0].version, b.flows[0].version);
    assert!(
        !a.flows[0].definition.contains("\"state\""),
        "{}",
        a.flows[0].definition
    );
}

/// A table's rows can come from a CSV file beside the flows file (a header
/// line, then key,value); a missing file is an error naming the table.
#[test]
fn a_table_from_a_csv_file_beside_the_flows_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("priorities.csv"),
        "key,value\n1,Highest\n\"2\",\"High\"\n",
    )
    .expect("csv");
    let text = FILE.replace(
        r#"rows = { "1" = "Highest", "2" = "High" }"#,
        r#"file = "priorities.csv""#,
    );
    let path = dir.path().join("flows.toml");
    std::fs::write(&path, &text).expect("flows");
    let flows = crate::load_file(&path).expect("valid");
    let mut e = event(r#"{"sys_id": "s1", "priority": "1", "short_description": "x"}"#);
    e.source_id = "acme.servicenow".into();
    let body = crate::route::plan_flow(&flows.flows[0], &e)
        .expect("maps")
        .expect("routed")
        .body;
    assert!(body.contains(r#""name":"Highest""#), "{body}");

    std::fs::remove_file(dir.path().join("priorities.csv")).expect("remove");
    let e = crate::load_file(&path).expect_err("no file").to_string();
    assert!(e.contains("tables[priority].file: cannot read"), "{e}");
}
