//! Schedule expressions: `rate(5 minutes)`, `cron(0 12 * * ? *)` (AWS) or `cron(0 12 * * 1-5)`
//! (common five fields), `at(2026-12-24T18:00:00)`, in a time zone, between an optional start
//! and end; and the firing times they give.

use super::cron::{self, Flavor};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// What the expression says, parsed.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// Every `period`, at whole multiples of it from the anchor (the start, else the Unix epoch).
    Rate { period: Duration },
    Cron(Box<croner::Cron>),
    /// Once, at this local time.
    At(NaiveDateTime),
}

/// An expression with its time zone and window: the times it fires.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub expr: Expr,
    pub tz: Tz,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

impl Expr {
    pub(crate) fn parse(text: &str) -> Result<Expr, String> {
        let text = text.trim();
        let body = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(b) = body("rate(") {
            return rate(b);
        }
        if let Some(b) = body("cron(") {
            let (cron, _flavor): (croner::Cron, Flavor) = cron::parse(b)?;
            return Ok(Expr::Cron(Box::new(cron)));
        }
        if let Some(b) = body("at(") {
            let at = NaiveDateTime::parse_from_str(b, AT_FORMAT).map_err(|e| {
                format!("at({b}): expected a local date and time yyyy-mm-ddThh:mm:ss ({e})")
            })?;
            // Positions are milliseconds since the Unix epoch.
            if at.year() < 1970 {
                return Err(format!("at({b}): must be in 1970 or later"));
            }
            return Ok(Expr::At(at));
        }
        Err(format!(
            "`{text}` is not a schedule expression; expected rate(N unit), cron(...) or at(yyyy-mm-ddThh:mm:ss)"
        ))
    }
}

/// `N unit`: AWS's minutes, hours and days (singular for 1, plural otherwise), and seconds,
/// weir's extension.
fn rate(body: &str) -> Result<Expr, String> {
    let usage = "expected rate(N unit) with a unit of second(s), minute(s), hour(s) or day(s)";
    let mut words = body.split_whitespace();
    let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("rate({body}): {usage}"));
    };
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("rate({body}): `{n}` must be a whole number of at least 1"))?;
    let (singular, seconds) = match unit.trim_end_matches('s') {
        "second" => ("second", 1),
        "minute" => ("minute", 60),
        "hour" => ("hour", 3600),
        "day" => ("day", 86_400),
        _ => return Err(format!("rate({body}): unknown unit `{unit}`; {usage}")),
    };
    let plural = unit.ends_with('s');
    if n == 1 && plural {
        return Err(format!(
            "rate({body}): write `rate(1 {singular})`: AWS takes the singular for 1"
        ));
    }
    if n > 1 && !plural {
        return Err(format!(
            "rate({body}): write `rate({n} {singular}s)`: AWS takes the plural above 1"
        ));
    }
    // Ten years at most: beyond that a rate is surely a typo, and the arithmetic stays small.
    let period = n
        .checked_mul(seconds)
        .filter(|s| *s <= 10 * 366 * 86_400)
        .ok_or_else(|| format!("rate({body}): at most 10 years"))?;
    Ok(Expr::Rate {
        period: Duration::seconds(period),
    })
}

/// An IANA time zone name.
pub(crate) fn timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; expected an IANA name such as `UTC` or `Europe/Paris`")
    })
}

/// `start` / `end`: RFC 3339 with an offset, or a local time in the schedule's zone.
pub(crate) fn instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, AT_FORMAT)
        .map(|n| local(n, tz))
        .map_err(|_| {
            format!("`{text}`: expected yyyy-mm-ddThh:mm:ss (in `timezone`) or RFC 3339 with an offset")
        })
}

/// A local time as an instant: in a DST overlap the first of the two; in a DST gap the first
/// minute after it (as croner does for fixed-time cron jobs).
pub(crate) fn local(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut t = naive;
    for _ in 0..(48 * 60) {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(l) | LocalResult::Ambiguous(l, _) => {
                return l.with_timezone(&Utc);
            }
            LocalResult::None => t += Duration::minutes(1),
        }
    }
    // No zone has a gap of two days: read it as UTC rather than fail.
    naive.and_utc()
}

impl Schedule {
    /// The first firing strictly after `t`, within the window; `None` when there is none.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = match self.start {
            // A firing at the start itself counts.
            Some(s) if t < s => s - Duration::milliseconds(1),
            _ => t,
        };
        let next = match &self.expr {
            Expr::Rate { period } => {
                let anchor = self.anchor();
                let p = period.num_milliseconds();
                let since = (from - anchor).num_milliseconds();
                let k = if since < 0 { 0 } else { since / p + 1 };
                anchor.checked_add_signed(Duration::milliseconds(k.checked_mul(p)?))?
            }
            Expr::Cron(cron) => cron
                .find_next_occurrence(&from.with_timezone(&self.tz), false)
                .ok()?
                .with_timezone(&Utc),
            Expr::At(at) => Some(local(*at, self.tz)).filter(|a| *a > from)?,
        };
        self.within(next)
    }

    /// The last firing at or before `t`, within the window.
    pub(crate) fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let to = match self.end {
            Some(e) if t > e => e,
            _ => t,
        };
        let last = match &self.expr {
            Expr::Rate { period } => {
                let anchor = self.anchor();
                let since = (to - anchor).num_milliseconds();
                if since < 0 {
                    return None;
                }
                let p = period.num_milliseconds();
                anchor + Duration::milliseconds(since / p * p)
            }
            Expr::Cron(cron) => cron
                .find_previous_occurrence(&to.with_timezone(&self.tz), true)
                .ok()?
                .with_timezone(&Utc),
            Expr::At(at) => Some(local(*at, self.tz)).filter(|a| *a <= to)?,
        };
        self.within(last)
    }

    /// How many firings there are in `(after, to]`, counting at most `cap`.
    pub(crate) fn count_between(
        &self,
        after: DateTime<Utc>,
        to: DateTime<Utc>,
        cap: u64,
    ) -> u64 {
        if let (Expr::Rate { period }, None, None) = (&self.expr, self.start, self.end) {
            let (Some(first), Some(last)) = (self.next_after(after), self.last_at_or_before(to))
            else {
                return 0;
            };
            if last < first {
                return 0;
            }
            let n = (last - first).num_milliseconds() / period.num_milliseconds() + 1;
            return (n as u64).min(cap);
        }
        let mut n = 0;
        let mut t = after;
        while n < cap {
            match self.next_after(t) {
                Some(next) if next <= to => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }

    /// The latest `max` firings in `(after, to]`, oldest first, and how many older ones there
    /// were besides (counted up to `cap`).
    pub(crate) fn latest_between(
        &self,
        after: DateTime<Utc>,
        to: DateTime<Utc>,
        max: usize,
        cap: u64,
    ) -> (Vec<DateTime<Utc>>, u64) {
        let mut kept = Vec::new();
        let mut t = to;
        let mut exclusive = false;
        while kept.len() < max {
            let found = if exclusive {
                t.checked_sub_signed(Duration::milliseconds(1))
                    .and_then(|b| self.last_at_or_before(b))
            } else {
                self.last_at_or_before(t)
            };
            match found {
                Some(f) if f > after => {
                    kept.push(f);
                    t = f;
                    exclusive = true;
                }
                _ => break,
            }
        }
        kept.reverse();
        let dropped = match kept.first() {
            Some(oldest) if kept.len() == max => {
                self.count_between(after, *oldest - Duration::milliseconds(1), cap)
            }
            _ => 0,
        };
        (kept, dropped)
    }

    fn anchor(&self) -> DateTime<Utc> {
        self.start.unwrap_or(DateTime::UNIX_EPOCH)
    }

    fn within(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after_start = self.start.is_none_or(|s| t >= s);
        let before_end = self.end.is_none_or(|e| t <= e);
        (after_start && before_end).then_some(t)
    }
}
