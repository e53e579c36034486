# Mapping helpers available to every jq program in a flows file.
# Documented in docs/flows.md; tested in src/jq.rs.

# value_map($m), value_map($m; $default) and reformat_date($in; $out) are
# native (src/natives.rs): they run on every mapped event.

# At most $n characters; a cut string ends with "…" (counted in the $n).
def truncate($n): if length > $n then .[0:($n - 1)] + "…" else . end;

# ServiceNow's "2026-11-28 08:12:44" (UTC) to ISO 8601 "2026-11-28T08:12:44Z".
def snow_to_iso: reformat_date("%Y-%m-%d %H:%M:%S"; "%Y-%m-%dT%H:%M:%SZ");
