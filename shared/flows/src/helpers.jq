# Mapping helpers available to every jq program in a flows file.
# Documented in docs/flows.md; tested in src/jq.rs.

# Looks the input (as a string) up in the object $m; values not in $m pass
# through unchanged. `.priority | value_map({"1": "Highest"})`
def value_map($m): (tostring) as $k | if $m | has($k) then $m[$k] else . end;

# Like value_map($m), with $default for values not in $m.
def value_map($m; $default): (tostring) as $k | if $m | has($k) then $m[$k] else $default end;

# At most $n characters; a cut string ends with "…" (counted in the $n).
def truncate($n): if length > $n then .[0:($n - 1)] + "…" else . end;

# Parses the input with strptime format $in and formats it with $out (UTC).
def reformat_date($in; $out): strptime($in) | mktime | strftime($out);

# ServiceNow's "2026-11-28 08:12:44" (UTC) to ISO 8601 "2026-11-28T08:12:44Z".
def snow_to_iso: reformat_date("%Y-%m-%d %H:%M:%S"; "%Y-%m-%dT%H:%M:%SZ");
