//! Mapping helpers written in Rust instead of jq. They run for every event
//! a flow maps, and a native lookup or date conversion costs a fraction of
//! the jq definition it replaces (measured in docs/benchmarks.md); their
//! behaviour is the same (tests in `program.rs`). The helpers that stay in jq
//! are in `helpers.jq`.

use jaq_core::native::{Filter, Fun, bome, run, v};
use jaq_core::{Error, RunPtr, ValR, data};
use jaq_json::Val;
use jiff::fmt::strtime;
use jiff::tz::{Offset, TimeZone};

type D = data::JustLut<Val>;

/// The native helpers, to chain after jaq's own.
pub(crate) fn funs() -> impl Iterator<Item = Fun<D>> {
    let filters: Box<[Filter<RunPtr<D>>]> = Box::new([
        // `value_map($m)`: the input, as a string, looked up in the object
        // $m; values not in $m pass through unchanged.
        ("value_map", v(1), |mut cv| {
            let map = cv.0.pop_var();
            bome(value_map(cv.1, &map, None))
        }),
        // `value_map($m; $default)`: $default for values not in $m.
        ("value_map", v(2), |mut cv| {
            let default = cv.0.pop_var();
            let map = cv.0.pop_var();
            bome(value_map(cv.1, &map, Some(default)))
        }),
        // `reformat_date($in; $out)`: parses the input with strptime
        // format $in (UTC unless it names an offset) and formats it with
        // strftime format $out in UTC.
        ("reformat_date", v(2), |mut cv| {
            let out = cv.0.pop_var();
            let input = cv.0.pop_var();
            bome(reformat_date(&cv.1, &input, &out))
        }),
    ]);
    filters.into_vec().into_iter().map(run::<D>)
}

pub(crate) fn value_map(value: Val, map: &Val, default: Option<Val>) -> ValR<Val> {
    let Val::Obj(map) = map else {
        return Err(Error::str(format_args!(
            "value_map: the map must be an object, not {map}"
        )));
    };
    let key = match &value {
        Val::TStr(_) => value.clone(),
        // jq's tostring: anything else by its JSON text.
        other => Val::utf8_str(other.to_string().into_bytes()),
    };
    Ok(match map.get(&key) {
        Some(mapped) => mapped.clone(),
        None => default.unwrap_or(value),
    })
}

pub(crate) fn reformat_date(value: &Val, input: &Val, output: &Val) -> ValR<Val> {
    let (Val::TStr(text), Val::TStr(input), Val::TStr(output)) = (value, input, output) else {
        return Err(Error::str(format_args!(
            "reformat_date: expects a string and two format strings, got {value}"
        )));
    };
    let fail = |e: jiff::Error| Error::str(format_args!("reformat_date: {e}"));
    let mut parsed = strtime::BrokenDownTime::parse(input.as_ref(), text.as_ref()).map_err(fail)?;
    if parsed.offset().is_none() && parsed.iana_time_zone().is_none() {
        parsed.set_offset(Some(Offset::UTC));
    }
    let utc = parsed
        .to_zoned()
        .map_err(fail)?
        .with_time_zone(TimeZone::UTC);
    let formatted = strtime::format(output.as_ref(), &utc).map_err(fail)?;
    Ok(Val::utf8_str(formatted.into_bytes()))
}
