//! The canonical schemas without a registry: every one parses, each
//! reads every released version of itself, and every released version
//! reads it (old consumers keep working; the registry round trip is in
//! the stack tests, tests/tests/stack/schemas_registry.rs).

use intops_events::{RecordKind, parse_all_schemas};

#[test]
fn every_schema_parses() {
    assert_eq!(
        parse_all_schemas().expect("parse").len(),
        RecordKind::ALL.len()
    );
}

#[test]
fn shipped_schemas_read_every_released_version() {
    use apache_avro::Schema;
    use apache_avro::schema_compatibility::SchemaCompatibility;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
    let mut checked = 0;
    for kind in RecordKind::ALL {
        let reader = Schema::parse_str(kind.schema_text()).expect("shipped schema");
        let name = kind.full_name().rsplit('.').next().expect("name");
        for entry in std::fs::read_dir(format!("{dir}/released")).expect("released dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let writer = Schema::parse_str(&text).expect("released schema parses");
            if writer.name().map(|n| n.name()) != Some(name) {
                continue;
            }
            SchemaCompatibility::can_read(&writer, &reader).unwrap_or_else(|e| {
                panic!(
                    "{name} cannot read data written with {}: {e}",
                    path.display()
                )
            });
            // And consumers still on the released schema read what is
            // written now (new fields are optional).
            SchemaCompatibility::can_read(&reader, &writer).unwrap_or_else(|e| {
                panic!(
                    "a {name} reader with {} cannot read data written now: {e}",
                    path.display()
                )
            });
            checked += 1;
        }
    }
    assert!(checked >= 5, "every record kind has a released version");
}
