//! Direct evaluation of the common shape of flow programs: object and array
//! construction, field reads, literals, pipes, comparisons, `and`/`or`/`//`,
//! `if`, string interpolation and the mapping helpers. Transform runs a
//! flow's condition and mapping for every event, and jaq builds an object
//! key by key through boxed iterators (a 7-key object of field reads costs
//! about 6 µs); the same object built here costs a fraction of that
//! (docs/benchmarks.md).
//!
//! An answer is given only where jq would give the same one: every part of
//! the program must produce exactly one value without an error. Anything
//! else (an error, no output, several outputs, a construct not listed
//! here) gives `None`, and the caller runs the program with jaq, which
//! then produces the answer and the error message. Programs with their
//! own definitions are left to jaq entirely, so no name can mean something
//! else than here. `direct/tests.rs` tests every construct against jaq.

use std::collections::BTreeSet;

use jaq_core::ValT as _;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Term};
use jaq_core::ops::Cmp;
use jaq_core::path::{Opt, Part};
use jaq_json::{Map, Val};

/// A program compiled for direct evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Direct {
    /// `.`
    Input,
    /// A value that does not depend on the input.
    Const(Val),
    /// `x.key`, `x."key"`, `x["key"]`.
    Field(Box<Direct>, Val),
    /// `l | r`
    Pipe(Box<Direct>, Box<Direct>),
    /// `{key: value, ...}` with literal keys, none twice.
    Obj(Vec<(Val, Direct)>),
    /// `[a, b, ...]`
    Arr(Vec<Direct>),
    /// `"text \(x) text"`
    Interpolate(Vec<Piece>),
    /// `l == r`, `l < r`, ...
    Cmp(Box<Direct>, Cmp, Box<Direct>),
    /// `l and r` (stop at false) and `l or r` (stop at true).
    Logic(Box<Direct>, bool, Box<Direct>),
    /// `l // r`
    Alt(Box<Direct>, Box<Direct>),
    /// `if c then a elif ... else b end` (`.` without `else`).
    If(Box<Direct>, Box<Direct>, Box<Direct>),
    /// `not`
    Not,
    /// `value_map($m)`, `value_map($m; $default)`
    ValueMap(Box<Direct>, Option<Box<Direct>>),
    /// `reformat_date($in; $out)`
    ReformatDate(Box<Direct>, Box<Direct>),
    /// A global variable (`$link`), by its index among the program's
    /// variables.
    Var(usize),
}

/// A part of an interpolated string.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Text(String),
    Value(Direct),
}

/// How deep helper definitions may call each other before giving up.
const MAX_INLINE_DEPTH: usize = 8;

impl Direct {
    /// `code` compiled for direct evaluation, or `None` when any part of
    /// it is outside what this module evaluates. `vars` are the program's
    /// global variables, with `$`.
    pub(crate) fn compile(code: &str, helpers: &[Def<&str>], vars: &[String]) -> Option<Self> {
        let term = jaq_core::load::parse(code, |p| p.term())?;
        Compiler { helpers, vars }.term(&term, 0).map(Self::fold)
    }

    /// The program's only output for `input`, with the variables' values
    /// (`null` for those not given); `None` when it may have another
    /// answer, several or none, or raise an error.
    pub(crate) fn eval(&self, input: &Val, vars: &[Val]) -> Option<Val> {
        Some(match self {
            Self::Input => input.clone(),
            Self::Const(v) => v.clone(),
            Self::Var(i) => vars.get(*i).cloned().unwrap_or(Val::Null),
            Self::Field(of, key) => match of.eval(input, vars)? {
                Val::Null => Val::Null,
                Val::Obj(map) => map.get(key).cloned().unwrap_or(Val::Null),
                _ => return None,
            },
            Self::Pipe(l, r) => r.eval(&l.eval(input, vars)?, vars)?,
            Self::Obj(entries) => {
                let mut map = Map::with_capacity_and_hasher(entries.len(), Default::default());
                for (key, value) in entries {
                    map.insert(key.clone(), value.eval(input, vars)?);
                }
                Val::obj(map)
            }
            Self::Arr(items) => items
                .iter()
                .map(|i| i.eval(input, vars))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .collect(),
            Self::Interpolate(pieces) => {
                let mut text = Vec::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.extend_from_slice(t.as_bytes()),
                        Piece::Value(d) => match d.eval(input, vars)?.into_string() {
                            Val::TStr(s) => text.extend_from_slice(&s),
                            _ => return None,
                        },
                    }
                }
                Val::utf8_str(text)
            }
            Self::Cmp(l, op, r) => Val::Bool(op.run(&l.eval(input, vars)?, &r.eval(input, vars)?)),
            Self::Logic(l, stop, r) => {
                if l.eval(input, vars)?.as_bool() == *stop {
                    Val::Bool(*stop)
                } else {
                    Val::Bool(r.eval(input, vars)?.as_bool())
                }
            }
            Self::Alt(l, r) => match l.eval(input, vars)? {
                v if v.as_bool() => v,
                _ => r.eval(input, vars)?,
            },
            Self::If(c, then, otherwise) => {
                if c.eval(input, vars)?.as_bool() {
                    then.eval(input, vars)?
                } else {
                    otherwise.eval(input, vars)?
                }
            }
            Self::Not => Val::Bool(!input.as_bool()),
            Self::ValueMap(map, default) => {
                let default = match default {
                    Some(d) => Some(d.eval(input, vars)?),
                    None => None,
                };
                crate::natives::value_map(input.clone(), &map.eval(input, vars)?, default).ok()?
            }
            Self::ReformatDate(from, to) => crate::natives::reformat_date(
                input,
                &from.eval(input, vars)?,
                &to.eval(input, vars)?,
            )
            .ok()?,
        })
    }

    /// Adds the top-level fields of its input that the program reads to
    /// `keys`; `false` when it uses its input otherwise (as a whole, or
    /// through a helper), so that it needs all of it.
    pub(crate) fn input_fields(&self, keys: &mut BTreeSet<String>) -> bool {
        match self {
            Self::Input | Self::Not | Self::ValueMap(..) | Self::ReformatDate(..) => false,
            Self::Const(_) | Self::Var(_) => true,
            Self::Field(of, key) => match (&**of, key) {
                (Self::Input, Val::TStr(k)) => match std::str::from_utf8(k) {
                    Ok(k) => {
                        keys.insert(k.to_string());
                        true
                    }
                    Err(_) => false,
                },
                (of, _) => of.input_fields(keys),
            },
            // `r` reads only what `l` gives it.
            Self::Pipe(l, _) => l.input_fields(keys),
            Self::Obj(entries) => entries.iter().all(|(_, v)| v.input_fields(keys)),
            Self::Arr(items) => items.iter().all(|i| i.input_fields(keys)),
            Self::Interpolate(pieces) => pieces.iter().all(|p| match p {
                Piece::Value(d) => d.input_fields(keys),
                Piece::Text(_) => true,
            }),
            Self::Cmp(l, _, r) | Self::Logic(l, _, r) | Self::Alt(l, r) => {
                l.input_fields(keys) && r.input_fields(keys)
            }
            Self::If(c, a, b) => {
                c.input_fields(keys) && a.input_fields(keys) && b.input_fields(keys)
            }
        }
    }

    /// Whether the value depends on the input (or a variable).
    fn reads_input(&self) -> bool {
        match self {
            Self::Input
            | Self::Var(_)
            | Self::Not
            | Self::ValueMap(..)
            | Self::ReformatDate(..) => true,
            Self::Const(_) => false,
            Self::Field(of, _) => of.reads_input(),
            // `r` reads only what `l` gives it.
            Self::Pipe(l, _) => l.reads_input(),
            Self::Obj(entries) => entries.iter().any(|(_, v)| v.reads_input()),
            Self::Arr(items) => items.iter().any(Self::reads_input),
            Self::Interpolate(pieces) => pieces
                .iter()
                .any(|p| matches!(p, Piece::Value(d) if d.reads_input())),
            Self::Cmp(l, _, r) | Self::Logic(l, _, r) | Self::Alt(l, r) => {
                l.reads_input() || r.reads_input()
            }
            Self::If(c, a, b) => c.reads_input() || a.reads_input() || b.reads_input(),
        }
    }

    /// Evaluates once what does not depend on the input, such as a value
    /// map's object literal, instead of building it for every event.
    fn fold(self) -> Self {
        if !self.reads_input()
            && let Some(v) = self.eval(&Val::Null, &[])
        {
            return Self::Const(v);
        }
        let fold = |d: Box<Self>| Box::new(d.fold());
        match self {
            Self::Field(of, key) => Self::Field(fold(of), key),
            Self::Pipe(l, r) => Self::Pipe(fold(l), fold(r)),
            Self::Obj(entries) => {
                Self::Obj(entries.into_iter().map(|(k, v)| (k, v.fold())).collect())
            }
            Self::Arr(items) => Self::Arr(items.into_iter().map(Self::fold).collect()),
            Self::Interpolate(pieces) => Self::Interpolate(
                pieces
                    .into_iter()
                    .map(|p| match p {
                        Piece::Value(d) => Piece::Value(d.fold()),
                        text => text,
                    })
                    .collect(),
            ),
            Self::Cmp(l, op, r) => Self::Cmp(fold(l), op, fold(r)),
            Self::Logic(l, stop, r) => Self::Logic(fold(l), stop, fold(r)),
            Self::Alt(l, r) => Self::Alt(fold(l), fold(r)),
            Self::If(c, a, b) => Self::If(fold(c), fold(a), fold(b)),
            Self::ValueMap(m, d) => Self::ValueMap(fold(m), d.map(fold)),
            Self::ReformatDate(f, t) => Self::ReformatDate(fold(f), fold(t)),
            other => other,
        }
    }
}

struct Compiler<'h, 's> {
    /// intops' helper definitions (`helpers.jq`); those without
    /// parameters are inlined.
    helpers: &'h [Def<&'s str>],
    /// The program's global variables, with `$`.
    vars: &'h [String],
}

impl Compiler<'_, '_> {
    fn term(&self, term: &Term<&str>, depth: usize) -> Option<Direct> {
        let sub = |t: &Term<&str>| self.term(t, depth).map(Box::new);
        Some(match term {
            Term::Id => Direct::Input,
            Term::Num(n) => Direct::Const(match n.parse::<isize>() {
                Ok(i) => Val::from(i),
                Err(_) => Val::from_num(n).ok()?,
            }),
            Term::Str(None, parts) => {
                let pieces = parts
                    .iter()
                    .map(|p| {
                        Some(match p {
                            StrPart::Str(s) => Piece::Text((*s).to_string()),
                            StrPart::Char(c) => Piece::Text(c.to_string()),
                            StrPart::Term(t) => Piece::Value(self.term(t, depth)?),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                match literal(&pieces) {
                    Some(text) => Direct::Const(Val::from(text)),
                    None => Direct::Interpolate(pieces),
                }
            }
            Term::Arr(None) => Direct::Const(Val::Arr(Default::default())),
            Term::Arr(Some(items)) => {
                let mut terms = Vec::new();
                commas(items, &mut terms);
                Direct::Arr(
                    terms
                        .into_iter()
                        .map(|t| self.term(t, depth))
                        .collect::<Option<_>>()?,
                )
            }
            Term::Obj(entries) => {
                let mut out: Vec<(Val, Direct)> = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let Term::Str(None, parts) = key else {
                        return None;
                    };
                    let key = literal_parts(parts)?;
                    let value = match value {
                        Some(v) => self.term(v, depth)?,
                        None => Direct::Field(Box::new(Direct::Input), Val::from(key.clone())),
                    };
                    let key = Val::from(key);
                    if out.iter().any(|(k, _)| *k == key) {
                        return None;
                    }
                    out.push((key, value));
                }
                Direct::Obj(out)
            }
            Term::Path(of, path) => {
                let mut d = self.term(of, depth)?;
                for (part, opt) in &path.0 {
                    let (Part::Index(Term::Str(None, parts)), Opt::Essential) = (part, opt) else {
                        return None;
                    };
                    d = Direct::Field(Box::new(d), Val::from(literal_parts(parts)?));
                }
                d
            }
            Term::BinOp(l, op, r) => match op {
                BinaryOp::Pipe(None) => Direct::Pipe(sub(l)?, sub(r)?),
                BinaryOp::Alt => Direct::Alt(sub(l)?, sub(r)?),
                BinaryOp::And => Direct::Logic(sub(l)?, false, sub(r)?),
                BinaryOp::Or => Direct::Logic(sub(l)?, true, sub(r)?),
                BinaryOp::Cmp(op) => Direct::Cmp(sub(l)?, *op, sub(r)?),
                _ => return None,
            },
            Term::IfThenElse(branches, otherwise) => {
                let mut d = match otherwise {
                    Some(e) => self.term(e, depth)?,
                    None => Direct::Input,
                };
                for (cond, then) in branches.iter().rev() {
                    d = Direct::If(sub(cond)?, sub(then)?, Box::new(d));
                }
                d
            }
            Term::Call(name, args) => self.call(name, args, depth)?,
            // Only the program's own text names the global variables (a
            // helper's `$x` is its own).
            Term::Var(name) if depth == 0 => Direct::Var(self.vars.iter().position(|v| v == name)?),
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: &[Term<&str>], depth: usize) -> Option<Direct> {
        let sub = |t: &Term<&str>| self.term(t, depth).map(Box::new);
        // intops' helpers are defined after jq's and shadow them.
        if let Some(def) = self
            .helpers
            .iter()
            .rev()
            .find(|d| d.name == name && d.args.len() == args.len())
        {
            return match (def.args.is_empty(), depth < MAX_INLINE_DEPTH) {
                (true, true) => self.term(&def.body, depth + 1),
                _ => None,
            };
        }
        Some(match (name, args) {
            ("null", []) => Direct::Const(Val::Null),
            ("true", []) => Direct::Const(Val::Bool(true)),
            ("false", []) => Direct::Const(Val::Bool(false)),
            ("not", []) => Direct::Not,
            ("value_map", [map]) => Direct::ValueMap(sub(map)?, None),
            ("value_map", [map, default]) => Direct::ValueMap(sub(map)?, Some(sub(default)?)),
            ("reformat_date", [from, to]) => Direct::ReformatDate(sub(from)?, sub(to)?),
            _ => return None,
        })
    }
}

/// `a, b, c` as its terms.
fn commas<'t, 's>(term: &'t Term<&'s str>, out: &mut Vec<&'t Term<&'s str>>) {
    match term {
        Term::BinOp(l, BinaryOp::Comma, r) => {
            commas(l, out);
            commas(r, out);
        }
        t => out.push(t),
    }
}

/// The text of a string without interpolation.
fn literal(pieces: &[Piece]) -> Option<String> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => Some(t.as_str()),
            Piece::Value(_) => None,
        })
        .collect()
}

fn literal_parts(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
    parts
        .iter()
        .map(|p| match p {
            StrPart::Str(s) => Some((*s).to_string()),
            StrPart::Char(c) => Some(c.to_string()),
            StrPart::Term(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
