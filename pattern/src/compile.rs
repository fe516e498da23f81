//! Pattern compiler: pattern JSON → a disjunction of rules, each a conjunction of field
//! conditions.
//!
//! `$or` and `{"exists": false}` listed beside other values are expanded here, so that the
//! matcher only ever sees flat rules: "for each condition, some leaf at this dotted path
//! matches one of these matchers" or "no leaf at this path". Every limit that keeps compile
//! time and memory bounded is enforced here, before anything is built.

use crate::cidr::IpRange;
use crate::error::{PatternError, Pointer};
use crate::number;
use crate::operators::{AnythingBut, CaseFold, Matcher, NumRange};
use crate::parse::{self, PValue};
use crate::wildcard::Wildcard;

/// Longest pattern text accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256 * 1024;
/// Most rules one pattern may expand into (`$or` branches times `exists: false` alternatives).
pub const MAX_RULES_PER_PATTERN: usize = 1024;

/// Operator names that may not be used as field names directly inside a `$or` branch:
/// event-ruler rejects them there, because `{"$or": [{"numeric": [...]}, ...]}` is almost
/// certainly an operator put at the wrong level.
const RESERVED: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub conds: Vec<Cond>,
}

#[derive(Debug, Clone)]
pub(crate) struct Cond {
    /// Dotted field path (`detail.amount`); a pattern key containing dots is the same path.
    pub path: String,
    pub test: Test,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// Some leaf at the path matches one of these.
    AnyOf(Vec<Matcher>),
    /// There is no leaf at the path.
    Absent,
}

#[derive(Debug, Clone)]
struct Spec {
    matchers: Vec<Matcher>,
    absent: bool,
}

/// Fields of one rule being built, in pattern order, one entry per path.
type Fields = Vec<(String, Spec)>;

pub(crate) fn compile(text: &str) -> Result<Vec<Rule>, PatternError> {
    if text.len() > MAX_PATTERN_LEN {
        return Err(PatternError::whole(format!(
            "pattern is {} bytes, more than the limit of {MAX_PATTERN_LEN}",
            text.len()
        )));
    }
    let v = parse::parse(text)?;
    compile_value(&v)
}

pub(crate) fn compile_value(v: &PValue) -> Result<Vec<Rule>, PatternError> {
    let PValue::Obj(members) = v else {
        return Err(PatternError::whole(format!(
            "a pattern must be a JSON object, found {}",
            v.kind()
        )));
    };
    let alts = object(members, "", &Pointer::Root, false)?;
    let mut rules = Vec::new();
    for fields in alts {
        // Each field with both values and `exists: false` doubles the rule.
        let mut partial: Vec<Vec<Cond>> = vec![Vec::new()];
        for (path, spec) in fields {
            let mut tests = Vec::new();
            if !spec.matchers.is_empty() {
                tests.push(Test::AnyOf(spec.matchers));
            }
            if spec.absent {
                tests.push(Test::Absent);
            }
            if tests.len() == 1 {
                let t = tests.pop().unwrap_or(Test::Absent);
                for p in &mut partial {
                    p.push(Cond {
                        path: path.clone(),
                        test: t.clone(),
                    });
                }
            } else {
                let mut next = Vec::with_capacity(partial.len() * 2);
                for p in &partial {
                    for t in &tests {
                        let mut q = p.clone();
                        q.push(Cond {
                            path: path.clone(),
                            test: t.clone(),
                        });
                        next.push(q);
                    }
                }
                partial = next;
            }
            if rules.len() + partial.len() > MAX_RULES_PER_PATTERN {
                return Err(too_many_rules());
            }
        }
        rules.extend(partial.into_iter().map(|conds| Rule { conds }));
        if rules.len() > MAX_RULES_PER_PATTERN {
            return Err(too_many_rules());
        }
    }
    Ok(rules)
}

fn too_many_rules() -> PatternError {
    PatternError::whole(format!(
        "pattern expands into more than {MAX_RULES_PER_PATTERN} alternatives ($or branches and exists:false combinations)"
    ))
}

/// Sets `path` in every alternative, replacing an earlier definition (event-ruler's
/// "the later definition of a field wins").
fn set(fields: &mut Fields, path: &str, spec: &Spec) {
    match fields.iter_mut().find(|(p, _)| p == path) {
        Some(slot) => slot.1 = spec.clone(),
        None => fields.push((path.to_string(), spec.clone())),
    }
}

/// Every combination of one alternative from `a` and one from `b`, `b`'s fields winning.
fn cross(a: Vec<Fields>, b: &[Fields]) -> Result<Vec<Fields>, PatternError> {
    if a.len().saturating_mul(b.len()) > MAX_RULES_PER_PATTERN {
        return Err(too_many_rules());
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in b {
            let mut f = x.clone();
            for (p, s) in y {
                set(&mut f, p, s);
            }
            out.push(f);
        }
    }
    Ok(out)
}

fn object(
    members: &[(String, PValue)],
    prefix: &str,
    ptr: &Pointer<'_>,
    or_branch: bool,
) -> Result<Vec<Fields>, PatternError> {
    if members.is_empty() {
        return Err(PatternError::new(
            ptr,
            "empty object: a pattern object needs at least one field",
        ));
    }
    let mut alts: Vec<Fields> = vec![Vec::new()];
    for (i, (k, v)) in members.iter().enumerate() {
        // Duplicate keys: the last one wins, as in event-ruler.
        if members[i + 1..].iter().any(|(k2, _)| k2 == k) {
            continue;
        }
        let p = ptr.key(k);
        if k == "$or" {
            let PValue::Arr(branches) = v else {
                return Err(PatternError::new(
                    &p,
                    format!(
                        "$or expects an array of at least 2 pattern objects, found {}",
                        v.kind()
                    ),
                ));
            };
            if branches.len() < 2 {
                return Err(PatternError::new(
                    &p,
                    "$or expects an array of at least 2 pattern objects",
                ));
            }
            let mut branch_alts = Vec::new();
            for (j, b) in branches.iter().enumerate() {
                let bp = p.index(j);
                let PValue::Obj(bm) = b else {
                    return Err(PatternError::new(
                        &bp,
                        format!(
                            "each $or element must be a pattern object, found {}",
                            b.kind()
                        ),
                    ));
                };
                branch_alts.extend(object(bm, prefix, &bp, true)?);
                if branch_alts.len() > MAX_RULES_PER_PATTERN {
                    return Err(too_many_rules());
                }
            }
            alts = cross(alts, &branch_alts)?;
            continue;
        }
        if or_branch && RESERVED.contains(&k.as_str()) {
            return Err(PatternError::new(
                &p,
                format!(
                    "\"{k}\" is an operator name and cannot be a field directly inside $or (put it in a value list: \"field\": [{{\"{k}\": ...}}])"
                ),
            ));
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            PValue::Obj(m) => {
                let sub = object(m, &path, &p, false)?;
                alts = cross(alts, &sub)?;
            }
            PValue::Arr(items) => {
                let spec = leaf(items, &p)?;
                for a in &mut alts {
                    set(a, &path, &spec);
                }
            }
            other => {
                return Err(PatternError::new(
                    &p,
                    format!(
                        "a pattern field must be an object or an array of values, found {}",
                        other.kind()
                    ),
                ));
            }
        }
    }
    Ok(alts)
}

fn leaf(items: &[PValue], ptr: &Pointer<'_>) -> Result<Spec, PatternError> {
    if items.is_empty() {
        return Err(PatternError::new(
            ptr,
            "empty array: list at least one value to match",
        ));
    }
    let mut spec = Spec {
        matchers: Vec::with_capacity(items.len()),
        absent: false,
    };
    for (i, item) in items.iter().enumerate() {
        let p = ptr.index(i);
        let m = match item {
            PValue::Str(s) => Matcher::exact_str(s),
            PValue::Num(t) => Matcher::exact_num(t),
            PValue::Bool(b) => Matcher::Bool(*b),
            PValue::Null => Matcher::Null,
            PValue::Arr(_) => {
                return Err(PatternError::new(
                    &p,
                    "a value list cannot contain an array",
                ));
            }
            PValue::Obj(m) => match operator(m, &p)? {
                Some(m) => m,
                None => {
                    spec.absent = true;
                    continue;
                }
            },
        };
        if !spec.matchers.contains(&m) {
            spec.matchers.push(m);
        }
    }
    Ok(spec)
}

/// One operator object. `Ok(None)` is `{"exists": false}`.
fn operator(m: &[(String, PValue)], p: &Pointer<'_>) -> Result<Option<Matcher>, PatternError> {
    let err = |msg: String| Err(PatternError::new(p, msg));
    let [(name, v)] = m else {
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        return err(format!(
            "an operator object must have exactly one key, found {} ({})",
            m.len(),
            keys.join(", ")
        ));
    };
    let m = match name.as_str() {
        "prefix" | "suffix" => {
            let ic = match v {
                PValue::Str(s) => {
                    let s: Box<[u8]> = s.as_bytes().into();
                    return Ok(Some(if name == "prefix" {
                        Matcher::Prefix(s)
                    } else {
                        Matcher::Suffix(s)
                    }));
                }
                PValue::Obj(inner) => match inner.as_slice() {
                    [(k, PValue::Str(s))] if k == "equals-ignore-case" => CaseFold::new(s),
                    _ => {
                        return err(format!(
                            "{name} expects a string or {{\"equals-ignore-case\": \"text\"}}"
                        ));
                    }
                },
                other => {
                    return err(format!(
                        "{name} expects a string or {{\"equals-ignore-case\": \"text\"}}, found {}",
                        other.kind()
                    ));
                }
            };
            if name == "prefix" {
                Matcher::PrefixIgnoreCase(ic)
            } else {
                Matcher::SuffixIgnoreCase(ic)
            }
        }
        "equals-ignore-case" => match v {
            PValue::Str(s) => Matcher::EqualsIgnoreCase(CaseFold::new(s)),
            other => {
                return err(format!(
                    "equals-ignore-case expects a string, found {}",
                    other.kind()
                ));
            }
        },
        "wildcard" => match v {
            PValue::Str(s) => {
                Matcher::Wildcard(Wildcard::parse(s).map_err(|e| PatternError::new(p, e))?)
            }
            other => return err(format!("wildcard expects a string, found {}", other.kind())),
        },
        // quamina's `shellstyle`: a wildcard without escapes.
        "shellstyle" => match v {
            PValue::Str(s) => Matcher::Wildcard(
                Wildcard::parse(&s.replace('\\', "\\\\")).map_err(|e| PatternError::new(p, e))?,
            ),
            other => {
                return err(format!(
                    "shellstyle expects a string, found {}",
                    other.kind()
                ));
            }
        },
        "cidr" => match v {
            PValue::Str(s) => Matcher::Cidr(
                IpRange::parse_cidr(s).map_err(|e| PatternError::new(p, format!("cidr: {e}")))?,
            ),
            other => {
                return err(format!(
                    "cidr expects a string like \"10.0.0.0/24\", found {}",
                    other.kind()
                ));
            }
        },
        "exists" => match v {
            PValue::Bool(true) => Matcher::Exists,
            PValue::Bool(false) => return Ok(None),
            other => {
                return err(format!(
                    "exists expects true or false, found {}",
                    other.kind()
                ));
            }
        },
        "numeric" => Matcher::Numeric(numeric(v, p)?),
        "anything-but" => Matcher::AnythingBut(anything_but(v, p)?),
        other => return err(format!("unknown operator \"{other}\"")),
    };
    Ok(Some(m))
}

fn numeric(v: &PValue, p: &Pointer<'_>) -> Result<NumRange, PatternError> {
    const SHAPE: &str = "numeric expects [\"=\", n], one bound like [\">\", n], or a lower then an upper bound like [\">\", 0, \"<=\", 5]";
    let err = |msg: String| Err(PatternError::new(p, msg));
    let PValue::Arr(items) = v else {
        return err(format!("{SHAPE}, found {}", v.kind()));
    };
    if items.len() != 2 && items.len() != 4 {
        return err(format!("{SHAPE}, found {} elements", items.len()));
    }
    let mut bounds = Vec::new();
    for pair in items.chunks(2) {
        let PValue::Str(op) = &pair[0] else {
            return err(format!(
                "{SHAPE}: an operator string must come before each number, found {}",
                pair[0].kind()
            ));
        };
        let PValue::Num(t) = &pair[1] else {
            return err(format!(
                "numeric: the value after \"{op}\" must be a number, found {}",
                pair[1].kind()
            ));
        };
        let Some(x) = number::comparable(t.as_bytes()) else {
            return err(format!(
                "numeric: {t} cannot be compared (outside the range of a double, or rounds to zero)"
            ));
        };
        if !matches!(op.as_str(), "=" | ">" | ">=" | "<" | "<=") {
            return err(format!(
                "numeric: unknown comparison \"{op}\" (use =, >, >=, < or <=)"
            ));
        }
        bounds.push((op.as_str(), x));
    }
    let bits = |x: f64| {
        if x == 0.0 {
            0f64.to_bits()
        } else {
            x.to_bits()
        }
    };
    let lower = |op: &str| op == ">" || op == ">=";
    let upper = |op: &str| op == "<" || op == "<=";
    match bounds.as_slice() {
        [("=", x)] => Ok(NumRange {
            lo: Some((bits(*x), true)),
            hi: Some((bits(*x), true)),
        }),
        [(op, x)] if lower(op) => Ok(NumRange {
            lo: Some((bits(*x), *op == ">=")),
            hi: None,
        }),
        [(op, x)] => Ok(NumRange {
            lo: None,
            hi: Some((bits(*x), *op == "<=")),
        }),
        [(a, x), (b, y)] if lower(a) && upper(b) => {
            if x >= y {
                return err(format!(
                    "numeric: the lower bound {x} must be less than the upper bound {y}"
                ));
            }
            Ok(NumRange {
                lo: Some((bits(*x), *a == ">=")),
                hi: Some((bits(*y), *b == "<=")),
            })
        }
        _ => err(SHAPE.to_string()),
    }
}

fn anything_but(v: &PValue, p: &Pointer<'_>) -> Result<AnythingBut, PatternError> {
    let err = |msg: String| Err(PatternError::new(p, msg));
    let num_key = |t: &str| match number::comparable(t.as_bytes()) {
        Some(x) => Ok(number::key(x)),
        None => Err(PatternError::new(
            p,
            format!("anything-but: {t} cannot be compared (outside the range of a double)"),
        )),
    };
    match v {
        PValue::Str(s) => Ok(AnythingBut::Strings(vec![s.as_bytes().into()])),
        PValue::Num(t) => Ok(AnythingBut::Numbers(vec![num_key(t)?])),
        PValue::Arr(items) => {
            if items.is_empty() {
                return err("anything-but: empty list".into());
            }
            if items.iter().all(|i| matches!(i, PValue::Str(_))) {
                Ok(AnythingBut::Strings(
                    items
                        .iter()
                        .filter_map(|i| match i {
                            PValue::Str(s) => Some(s.as_bytes().into()),
                            _ => None,
                        })
                        .collect(),
                ))
            } else if items.iter().all(|i| matches!(i, PValue::Num(_))) {
                let mut keys = Vec::new();
                for i in items {
                    if let PValue::Num(t) = i {
                        keys.push(num_key(t)?);
                    }
                }
                Ok(AnythingBut::Numbers(keys))
            } else {
                err("anything-but: a list must hold only strings or only numbers".into())
            }
        }
        PValue::Obj(m) => {
            let [(name, inner)] = m.as_slice() else {
                return err(format!(
                    "anything-but: an operator object must have exactly one key, found {}",
                    m.len()
                ));
            };
            let strings = |allow_empty: bool| -> Result<Vec<String>, PatternError> {
                let list: Vec<&PValue> = match inner {
                    PValue::Arr(items) if !items.is_empty() => items.iter().collect(),
                    PValue::Arr(_) => {
                        return Err(PatternError::new(
                            p,
                            format!("anything-but {name}: empty list"),
                        ));
                    }
                    one => vec![one],
                };
                let mut out = Vec::new();
                for x in list {
                    match x {
                        PValue::Str(s) if allow_empty || !s.is_empty() => out.push(s.clone()),
                        PValue::Str(_) => {
                            return Err(PatternError::new(
                                p,
                                format!("anything-but {name}: the value must not be empty"),
                            ));
                        }
                        other => {
                            return Err(PatternError::new(
                                p,
                                format!(
                                    "anything-but {name} expects a string or a list of strings, found {}",
                                    other.kind()
                                ),
                            ));
                        }
                    }
                }
                Ok(out)
            };
            match name.as_str() {
                "prefix" => Ok(AnythingBut::Prefixes(
                    strings(false)?
                        .into_iter()
                        .map(|s| s.into_bytes().into())
                        .collect(),
                )),
                "suffix" => Ok(AnythingBut::Suffixes(
                    strings(false)?
                        .into_iter()
                        .map(|s| s.into_bytes().into())
                        .collect(),
                )),
                "equals-ignore-case" => Ok(AnythingBut::IgnoreCase(
                    strings(true)?.iter().map(|s| CaseFold::new(s)).collect(),
                )),
                "wildcard" => {
                    let mut ws = Vec::new();
                    for s in strings(true)? {
                        ws.push(Wildcard::parse(&s).map_err(|e| {
                            PatternError::new(p, format!("anything-but wildcard: {e}"))
                        })?);
                    }
                    Ok(AnythingBut::Wildcards(ws))
                }
                other => err(format!(
                    "anything-but: unknown operator \"{other}\" (use prefix, suffix, equals-ignore-case or wildcard)"
                )),
            }
        }
        other => err(format!(
            "anything-but expects a string, a number, a list of them, or an operator object, found {}",
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(t: &str) -> PatternError {
        compile(t).unwrap_err()
    }

    #[test]
    fn pointers_in_errors() {
        let e = err(r#"{"data": {"detail": {"amount": [{"numeric": [">", "x"]}]}}}"#);
        assert_eq!(e.pointer, "/data/detail/amount/0");
        assert!(e.message.starts_with("numeric"), "{e}");
        assert_eq!(err("[1]").pointer, "");
        assert_eq!(err(r#"{"a": {}}"#).pointer, "/a");
    }

    #[test]
    fn or_expands_and_overrides() {
        let r = compile(r#"{"name": ["a"], "$or": [{"name": ["b"]}, {"c": ["x"]}]}"#).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].conds.len(), 1);
        assert_eq!(r[1].conds.len(), 2);
        let r = compile(r#"{"a": ["x", {"exists": false}], "b": [1]}"#).unwrap();
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn or_blowup_is_bounded() {
        let branch = r#"{"$or": [{"a": [1]}, {"b": [2]}, {"c": [3]}, {"d": [4]}]}"#;
        let t = format!(
            "{{\"x\": {branch}, \"y\": {branch}, \"z\": {branch}, \"w\": {branch}, \"v\": {branch}, \"u\": {branch}}}"
        );
        assert!(compile(&t).is_err());
    }
}
