//! Cron expressions, checked field by field before croner sees them, so that a mistake names
//! its field and value; AWS's six-field form (`cron(min hour dom month dow year)`, day-of-week
//! 1-7 = SUN-SAT, `?` in one of the day fields) is translated to croner's standard numbering
//! (0 = Sunday), and the common five-field form is passed as it is.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Which syntax: AWS's six fields, or the common five.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    Aws,
    Standard,
}

/// One field's name, bounds and what it may hold besides numbers, ranges, steps and `*`.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for values (months, days of the week), uppercase, with the value of each.
    names: &'static [(&'static str, u32)],
    question: bool,
    /// Day of month: `L`, `LW`, `nW`.
    dom_specials: bool,
    /// Day of week: `L`, `nL`, `n#k`.
    dow_specials: bool,
    /// How the valid values read in messages.
    expected: &'static str,
}

const MONTHS: &[(&str, u32)] = &[
    ("JAN", 1),
    ("FEB", 2),
    ("MAR", 3),
    ("APR", 4),
    ("MAY", 5),
    ("JUN", 6),
    ("JUL", 7),
    ("AUG", 8),
    ("SEP", 9),
    ("OCT", 10),
    ("NOV", 11),
    ("DEC", 12),
];
/// AWS numbers the days of the week 1 (Sunday) to 7 (Saturday).
const AWS_DAYS: &[(&str, u32)] = &[
    ("SUN", 1),
    ("MON", 2),
    ("TUE", 3),
    ("WED", 4),
    ("THU", 5),
    ("FRI", 6),
    ("SAT", 7),
];
/// Standard cron numbers them 0 (Sunday) to 6, and 7 is Sunday again.
const STD_DAYS: &[(&str, u32)] = &[
    ("SUN", 0),
    ("MON", 1),
    ("TUE", 2),
    ("WED", 3),
    ("THU", 4),
    ("FRI", 5),
    ("SAT", 6),
];

const fn field(name: &'static str, min: u32, max: u32, expected: &'static str) -> Field {
    Field {
        name,
        min,
        max,
        names: &[],
        question: false,
        dom_specials: false,
        dow_specials: false,
        expected,
    }
}

fn fields(flavor: Flavor) -> Vec<Field> {
    let aws = flavor == Flavor::Aws;
    let mut f = vec![
        field("minute", 0, 59, "0-59"),
        field("hour", 0, 23, "0-23"),
        Field {
            question: aws,
            dom_specials: true,
            ..field("day-of-month", 1, 31, "1-31")
        },
        Field {
            names: MONTHS,
            ..field("month", 1, 12, "1-12 or JAN-DEC")
        },
        if aws {
            Field {
                names: AWS_DAYS,
                question: true,
                dow_specials: true,
                ..field("day-of-week", 1, 7, "1-7 or SUN-SAT")
            }
        } else {
            Field {
                names: STD_DAYS,
                dow_specials: true,
                ..field("day-of-week", 0, 7, "0-7 (0 and 7: Sunday) or SUN-SAT")
            }
        },
    ];
    if aws {
        f.push(field("year", 1970, 2199, "1970-2199"));
    }
    f
}

/// Parses the inside of `cron(...)`: six fields in AWS's syntax, or five in the common one.
pub(super) fn parse(body: &str) -> Result<(Cron, Flavor), String> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let flavor = match parts.len() {
        6 => Flavor::Aws,
        5 => Flavor::Standard,
        n => {
            return Err(format!(
                "cron({body}) has {n} field{}; expected 6 (AWS: minute hour day-of-month month day-of-week year) or 5 (minute hour day-of-month month day-of-week)",
                if n == 1 { "" } else { "s" }
            ));
        }
    };
    let specs = fields(flavor);
    let mut translated = Vec::with_capacity(7);
    for (part, spec) in parts.iter().zip(&specs) {
        translated.push(check_field(part, spec, flavor)?);
    }
    if flavor == Flavor::Aws {
        let (dom, dow) = (parts[2], parts[4]);
        match (dom == "?", dow == "?") {
            (true, true) => {
                return Err("cron day-of-month and day-of-week are both `?`: one of them must say which days".into());
            }
            (false, false) => {
                return Err(format!(
                    "cron day-of-month `{dom}` and day-of-week `{dow}`: AWS takes one of them, the other must be `?`"
                ));
            }
            _ => {}
        }
    }
    // croner's seven fields: second, the five, year.
    let pattern = match flavor {
        Flavor::Aws => format!("0 {}", translated.join(" ")),
        Flavor::Standard => format!("0 {} *", translated.join(" ")),
    };
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        // AWS writes `0/15` for "every 15 from 0".
        .sloppy_ranges(flavor == Flavor::Aws)
        .build();
    let cron = parser
        .parse(&pattern)
        .map_err(|e| format!("cron({body}): {e}"))?;
    Ok((cron, flavor))
}

/// Checks one field and returns it as croner reads it: names replaced by numbers, AWS's days
/// of the week renumbered to 0 = Sunday, `?` as `*`.
fn check_field(text: &str, spec: &Field, flavor: Flavor) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    let bad = |why: String| {
        // A single value needs no second quote of itself: "cron day-of-week `8`: must be 1-7".
        let why = why
            .strip_prefix(&format!("`{upper}` "))
            .map(str::to_owned)
            .unwrap_or(why);
        format!("cron {} `{text}`: {why}", spec.name)
    };
    if upper == "?" {
        return if spec.question {
            Ok("*".into())
        } else if flavor == Flavor::Aws {
            Err(bad("`?` is only for day-of-month or day-of-week".into()))
        } else {
            Err(bad(
                "`?` is AWS's syntax (6 fields); in 5 fields write `*`".into(),
            ))
        };
    }
    let mut out = Vec::new();
    for item in upper.split(',') {
        if item.is_empty() {
            return Err(bad("an empty item in a list".into()));
        }
        out.push(check_item(item, spec, flavor).map_err(bad)?);
    }
    Ok(out.join(","))
}

fn check_item(item: &str, spec: &Field, flavor: Flavor) -> Result<String, String> {
    let aws_dow = flavor == Flavor::Aws && spec.dow_specials;
    // Day-of-week renumbering: AWS 1-7 (SUN-SAT) to croner's 0-6.
    let dow = |v: u32| if aws_dow { v - 1 } else { v };
    if item == "?" {
        return Err("`?` must stand alone in its field".into());
    }
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => {
            let step: u32 = s
                .parse()
                .map_err(|_| format!("step `{s}` must be a number"))?;
            if step == 0 || step > spec.max {
                return Err(format!("step `{step}` must be between 1 and {}", spec.max));
            }
            (b, Some(step))
        }
        None => (item, None),
    };
    let with_step = |s: String| match step {
        Some(n) => format!("{s}/{n}"),
        None => s,
    };
    if base == "*" {
        return Ok(with_step("*".into()));
    }
    if spec.dom_specials && step.is_none() {
        if base == "L" {
            return Ok("L".into());
        }
        if base == "LW" {
            return Err("`LW` (the last weekday of the month) is not supported".into());
        }
        if let Some(day) = base.strip_suffix('W') {
            let d = value(day, spec)?;
            return Ok(format!("{d}W"));
        }
    }
    if spec.dow_specials && step.is_none() {
        if base == "L" {
            // AWS: "the last day of the week", Saturday (in either numbering).
            return Ok("6".into());
        }
        if let Some(day) = base.strip_suffix('L') {
            let d = value(day, spec)?;
            return Ok(format!("{}#L", dow(d) % 7));
        }
        if let Some((day, nth)) = base.split_once('#') {
            let d = value(day, spec)?;
            let n: u32 = nth
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| format!("`#{nth}`: the week of the month must be 1-5"))?;
            return Ok(format!("{}#{n}", dow(d) % 7));
        }
    }
    // Names (`JUL`, `WED`) hold these letters too: look for them in what is left without names.
    let mut bare = base.to_owned();
    for (name, _) in spec.names {
        bare = bare.replace(name, "");
    }
    for c in ['L', 'W', '#'] {
        if bare.contains(c) {
            let allowed = match c {
                'L' => spec.dom_specials || spec.dow_specials,
                'W' => spec.dom_specials,
                _ => spec.dow_specials,
            };
            return Err(if allowed {
                format!("`{c}` cannot be combined with a range or a step")
            } else {
                format!("`{c}` is not allowed in {}", spec.name)
            });
        }
    }
    match base.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (value(a, spec)?, value(b, spec)?);
            if a > b && !spec.dow_specials {
                return Err(format!("range `{a}-{b}` goes backwards"));
            }
            Ok(with_step(format!("{}-{}", dow(a), dow(b))))
        }
        None => {
            let v = value(base, spec)?;
            Ok(with_step(format!("{}", dow(v))))
        }
    }
}

/// A number or name within the field's bounds.
fn value(text: &str, spec: &Field) -> Result<u32, String> {
    let v = match spec.names.iter().find(|(n, _)| *n == text) {
        Some((_, v)) => *v,
        None => text
            .parse::<u32>()
            .map_err(|_| format!("`{text}` must be {}", spec.expected))?,
    };
    if v < spec.min || v > spec.max {
        return Err(format!("`{text}` must be {}", spec.expected));
    }
    Ok(v)
}
