//! Expressions, time zones and catch-up arithmetic.

use super::expr::{Expr, Schedule, timezone};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

fn schedule(expr: &str, tz: &str) -> Schedule {
    Schedule {
        expr: Expr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}")),
        tz: timezone(tz).unwrap(),
        start: None,
        end: None,
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The next `n` firings after `from`, as RFC 3339 in UTC.
fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut t = utc(from);
    let mut out = Vec::new();
    for _ in 0..n {
        let Some(next) = s.next_after(t) else { break };
        out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        t = next;
    }
    out
}

fn error(expr: &str) -> String {
    Expr::parse(expr).err().unwrap_or_else(|| panic!("{expr} parsed"))
}

#[test]
fn rates_fire_at_multiples_of_their_period() {
    let s = schedule("rate(5 minutes)", "UTC");
    assert_eq!(
        next_n(&s, "2026-12-24T10:02:10Z", 3),
        ["2026-12-24T10:05:00Z", "2026-12-24T10:10:00Z", "2026-12-24T10:15:00Z"]
    );
    // Exactly on a firing: the next one.
    assert_eq!(next_n(&s, "2026-12-24T10:05:00Z", 1), ["2026-12-24T10:10:00Z"]);
    let s = schedule("rate(1 second)", "UTC");
    assert_eq!(
        next_n(&s, "2026-12-24T10:00:00.300Z", 2),
        ["2026-12-24T10:00:01Z", "2026-12-24T10:00:02Z"]
    );
    assert_eq!(
        s.last_at_or_before(utc("2026-12-24T10:00:00.300Z")),
        Some(utc("2026-12-24T10:00:00Z"))
    );
    // A start anchors the rate.
    let mut s = schedule("rate(1 hour)", "UTC");
    s.start = Some(utc("2026-12-24T10:30:00Z"));
    assert_eq!(
        next_n(&s, "2026-12-24T09:00:00Z", 2),
        ["2026-12-24T10:30:00Z", "2026-12-24T11:30:00Z"]
    );
    s.end = Some(utc("2026-12-24T12:00:00Z"));
    assert_eq!(next_n(&s, "2026-12-24T09:00:00Z", 5).len(), 2);
    assert_eq!(
        s.last_at_or_before(utc("2027-01-01T00:00:00Z")),
        Some(utc("2026-12-24T11:30:00Z"))
    );
}

#[test]
fn rate_errors_say_what_is_wrong() {
    assert!(error("rate(1 minutes)").contains("write `rate(1 minute)`"));
    assert!(error("rate(5 minute)").contains("write `rate(5 minutes)`"));
    assert!(error("rate(0 minutes)").contains("at least 1"));
    assert!(error("rate(5 weeks)").contains("unknown unit `weeks`"));
    assert!(error("rate(5)").contains("expected rate(N unit)"));
    assert!(error("every 5 minutes").contains("not a schedule expression"));
}

#[test]
fn aws_cron_numbers_days_of_the_week_from_sunday_1() {
    // 2026-12-20 is a Sunday. AWS 2 = Monday, 6 = Friday.
    let s = schedule("cron(0 12 ? * 2-6 *)", "UTC");
    assert_eq!(
        next_n(&s, "2026-12-19T00:00:00Z", 6),
        [
            "2026-12-21T12:00:00Z",
            "2026-12-22T12:00:00Z",
            "2026-12-23T12:00:00Z",
            "2026-12-24T12:00:00Z",
            "2026-12-25T12:00:00Z",
            "2026-12-28T12:00:00Z",
        ]
    );
    // 1 = SUN, 7 = SAT, and names.
    let sun = schedule("cron(0 8 ? * 1 *)", "UTC");
    assert_eq!(next_n(&sun, "2026-12-19T00:00:00Z", 1), ["2026-12-20T08:00:00Z"]);
    let sat = schedule("cron(0 8 ? * 7 *)", "UTC");
    assert_eq!(next_n(&sat, "2026-12-20T00:00:00Z", 1), ["2026-12-26T08:00:00Z"]);
    let named = schedule("cron(0 8 ? * MON-FRI *)", "UTC");
    assert_eq!(next_n(&named, "2026-12-19T00:00:00Z", 1), ["2026-12-21T08:00:00Z"]);
    // Names holding the letters of L, W and #.
    let wed = schedule("cron(0 8 ? JUL WED 2027)", "UTC");
    assert_eq!(next_n(&wed, "2027-01-01T00:00:00Z", 1), ["2027-07-07T08:00:00Z"]);
    let list = schedule("cron(0 8 ? * SUN,sat *)", "UTC");
    assert_eq!(
        next_n(&list, "2026-12-21T00:00:00Z", 2),
        ["2026-12-26T08:00:00Z", "2026-12-27T08:00:00Z"]
    );
}

#[test]
fn common_cron_numbers_days_of_the_week_from_sunday_0() {
    let s = schedule("cron(0 12 * * 1-5)", "UTC");
    assert_eq!(
        next_n(&s, "2026-12-19T00:00:00Z", 2),
        ["2026-12-21T12:00:00Z", "2026-12-22T12:00:00Z"]
    );
    for sunday in ["0", "7", "SUN"] {
        let s = schedule(&format!("cron(30 6 * * {sunday})"), "UTC");
        assert_eq!(next_n(&s, "2026-12-19T00:00:00Z", 1), ["2026-12-20T06:30:00Z"], "{sunday}");
    }
    let steps = schedule("cron(*/20 * * * *)", "UTC");
    assert_eq!(
        next_n(&steps, "2026-12-19T00:05:00Z", 2),
        ["2026-12-19T00:20:00Z", "2026-12-19T00:40:00Z"]
    );
}

#[test]
fn aws_cron_l_w_hash_and_year() {
    // L in day-of-month: the last day; 2027-02 has 28 days.
    let s = schedule("cron(0 0 L 2 ? 2027)", "UTC");
    assert_eq!(next_n(&s, "2026-12-01T00:00:00Z", 2), ["2027-02-28T00:00:00Z"]);
    // 15W: the weekday nearest the 15th; 2026-08-15 is a Saturday, so Friday the 14th.
    let s = schedule("cron(0 9 15W 8 ? 2026)", "UTC");
    assert_eq!(next_n(&s, "2026-01-01T00:00:00Z", 1), ["2026-08-14T09:00:00Z"]);
    // 3#2: the second Tuesday (AWS 3 = TUE); in 2026-12 the 8th.
    let s = schedule("cron(0 10 ? 12 3#2 2026)", "UTC");
    assert_eq!(next_n(&s, "2026-12-01T00:00:00Z", 1), ["2026-12-08T10:00:00Z"]);
    // 6L: the last Friday (AWS 6 = FRI); in 2026-12 the 25th.
    let s = schedule("cron(0 10 ? 12 6L 2026)", "UTC");
    assert_eq!(next_n(&s, "2026-12-01T00:00:00Z", 1), ["2026-12-25T10:00:00Z"]);
    // L in day-of-week: Saturday, the week's last day.
    let s = schedule("cron(0 10 ? * L *)", "UTC");
    assert_eq!(next_n(&s, "2026-12-20T00:00:00Z", 1), ["2026-12-26T10:00:00Z"]);
    // AWS's `0/15`, and a year range that ends.
    let s = schedule("cron(0/15 * * * ? 2026-2027)", "UTC");
    assert_eq!(
        next_n(&s, "2027-12-31T23:40:00Z", 3),
        ["2027-12-31T23:45:00Z"],
        "no firing after the last year"
    );
}

#[test]
fn cron_errors_name_the_field_and_value() {
    assert_eq!(
        error("cron(0 12 ? * 8 *)"),
        "cron day-of-week `8`: must be 1-7 or SUN-SAT"
    );
    assert_eq!(
        error("cron(0 12 ? * 0 *)"),
        "cron day-of-week `0`: must be 1-7 or SUN-SAT"
    );
    assert_eq!(error("cron(60 12 * * ? *)"), "cron minute `60`: must be 0-59");
    assert_eq!(error("cron(0 24 * * ? *)"), "cron hour `24`: must be 0-23");
    assert_eq!(error("cron(0 1 32 * ? *)"), "cron day-of-month `32`: must be 1-31");
    assert_eq!(
        error("cron(0 1 1 13 ? *)"),
        "cron month `13`: must be 1-12 or JAN-DEC"
    );
    assert_eq!(error("cron(0 1 1 1 ? 1969)"), "cron year `1969`: must be 1970-2199");
    assert!(error("cron(0 12 * * * *)").contains("the other must be `?`"));
    assert!(error("cron(0 12 ? * ? *)").contains("both `?`"));
    assert!(error("cron(0 ? * * MON *)").contains("only for day-of-month or day-of-week"));
    assert!(error("cron(0 12 ? * 3#6 *)").contains("week of the month must be 1-5"));
    assert!(error("cron(0 12 * * 1 * 1)").contains("has 7 fields"));
    assert!(error("cron(0 12 ? * 1-5)").contains("AWS's syntax (6 fields)"));
    assert_eq!(error("cron(0 12 * * 8)"), "cron day-of-week `8`: must be 0-7 (0 and 7: Sunday) or SUN-SAT");
    assert!(error("cron(0 5W * * ? *)").contains("`W` is not allowed in hour"));
    assert!(error("cron(0 1 1 * ? */0)").contains("step `0`"));
}

#[test]
fn at_fires_once_in_its_zone() {
    let s = schedule("at(2026-12-24T18:00:00)", "Europe/Paris");
    assert_eq!(next_n(&s, "2026-01-01T00:00:00Z", 3), ["2026-12-24T17:00:00Z"]);
    assert_eq!(s.next_after(utc("2026-12-24T17:00:00Z")), None);
    assert_eq!(
        s.last_at_or_before(utc("2027-01-01T00:00:00Z")),
        Some(utc("2026-12-24T17:00:00Z"))
    );
    assert!(error("at(2026-12-24 18:00)").contains("yyyy-mm-ddThh:mm:ss"));
    assert!(error("at(2026-02-30T18:00:00)").contains("yyyy-mm-ddThh:mm:ss"));
    assert!(error("at(1969-12-31T23:59:59)").contains("1970 or later"));
}

#[test]
fn time_zones_and_daylight_saving() {
    // 12:00 in Paris is 11:00 UTC in winter and 10:00 UTC in summer.
    let s = schedule("cron(0 12 * * ? *)", "Europe/Paris");
    assert_eq!(next_n(&s, "2026-12-24T00:00:00Z", 1), ["2026-12-24T11:00:00Z"]);
    assert_eq!(next_n(&s, "2026-07-01T00:00:00Z", 1), ["2026-07-01T10:00:00Z"]);
    // Spring forward (2026-03-29, 02:00 -> 03:00 in Paris): a 02:30 job fires once that day,
    // right after the gap.
    let s = schedule("cron(30 2 * * ? *)", "Europe/Paris");
    assert_eq!(
        next_n(&s, "2026-03-28T12:00:00Z", 3),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]
    );
    // Fall back (2026-10-25, 03:00 -> 02:00): a fixed-time 02:30 job fires once.
    assert_eq!(
        next_n(&s, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // An hourly job fires every real hour: twice at 02:00 local when the clock falls back,
    // never at 02:00 when it springs forward.
    let hourly = schedule("cron(0 * * * ? *)", "Europe/Paris");
    assert_eq!(
        next_n(&hourly, "2026-10-24T23:30:00Z", 3),
        ["2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"]
    );
    assert_eq!(
        next_n(&hourly, "2026-03-28T23:30:00Z", 2),
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"]
    );
    // at() in a gap: the first minute after it; in an overlap: the first of the two.
    let gap = schedule("at(2026-03-29T02:30:00)", "Europe/Paris");
    assert_eq!(next_n(&gap, "2026-01-01T00:00:00Z", 1), ["2026-03-29T01:00:00Z"]);
    let overlap = schedule("at(2026-10-25T02:30:00)", "Europe/Paris");
    assert_eq!(next_n(&overlap, "2026-01-01T00:00:00Z", 1), ["2026-10-25T00:30:00Z"]);
    assert!(timezone("Mars/Olympus").unwrap_err().contains("unknown time zone `Mars/Olympus`"));
    // A rate ignores the zone.
    let paris = Utc
        .from_utc_datetime(&NaiveDate::from_ymd_opt(2026, 1, 1).unwrap().and_hms_opt(0, 0, 7).unwrap());
    let s = schedule("rate(10 seconds)", "Asia/Kolkata");
    assert_eq!(s.next_after(paris), Some(utc("2026-01-01T00:00:10Z")));
}

#[test]
fn catch_up_keeps_the_newest_and_counts_the_rest() {
    let s = schedule("rate(1 minute)", "UTC");
    let (from, to) = (utc("2026-12-24T10:00:00Z"), utc("2026-12-24T11:00:30Z"));
    assert_eq!(s.count_between(from, to, u64::MAX), 60);
    let (kept, older) = s.latest_between(from, to, 3, u64::MAX);
    assert_eq!(
        kept,
        [utc("2026-12-24T10:58:00Z"), utc("2026-12-24T10:59:00Z"), utc("2026-12-24T11:00:00Z")]
    );
    assert_eq!(older, 57);
    let (all, older) = s.latest_between(from, to, 100, u64::MAX);
    assert_eq!((all.len(), older), (60, 0));
    assert_eq!(all[0], utc("2026-12-24T10:01:00Z"));
    // The same through croner's backward search.
    let c = schedule("cron(* * * * ? *)", "UTC");
    assert_eq!(c.latest_between(from, to, 3, u64::MAX), (kept, 57));
    assert_eq!(c.count_between(from, to, 10), 10, "counting stops at the cap");
    let none = s.latest_between(to, to, 3, u64::MAX);
    assert_eq!(none, (vec![], 0));
}

mod restarts {
    use super::super::{ScheduleSourceConfig, open};
    use crate::source::{SourceContext, SourceEvent};
    use chrono::{Duration, Utc};
    use tokio_util::sync::CancellationToken;

    fn config(catch_up: &str) -> ScheduleSourceConfig {
        toml::from_str(&format!(
            "schedule = \"rate(1 second)\"\nname = \"t\"\ncatch_up = \"{catch_up}\"\n"
        ))
        .unwrap()
    }

    /// Opens the source and reads one batch (the queued firings come at once).
    async fn first_batch(cfg: &ScheduleSourceConfig, ctx: &SourceContext) -> Vec<SourceEvent> {
        let (mut source, _acker) = open(cfg, ctx).unwrap();
        source
            .next_batch(&CancellationToken::new())
            .await
            .unwrap()
            .unwrap()
    }

    fn ids(batch: &[SourceEvent]) -> Vec<(String, bool)> {
        batch
            .iter()
            .map(|e| {
                let catch_up = e.envelope.meta["catch_up"].as_bool().unwrap();
                (e.envelope.id.clone(), catch_up)
            })
            .collect()
    }

    /// A crash after a catch-up emits the caught-up firing again, and not the ones it skipped.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_crash_after_a_catch_up_repeats_only_what_was_emitted() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = SourceContext {
            pipeline: "p".into(),
            state_dir: dir.path().to_owned(),
            status: None,
            max_in_flight: 10_000,
        };
        let cfg = config("last");
        let state = super::super::state::StateFile::new(dir.path());
        // Stopped for a minute, nothing pending.
        state.begin(Utc::now() - Duration::seconds(60)).unwrap();
        let caught = ids(&first_batch(&cfg, &ctx).await);
        assert_eq!(caught.len(), 1, "{caught:?}");
        assert!(caught[0].1, "a catch-up");
        // Killed before it finished: the same firing again (now pending, no longer a catch-up),
        // then the latest missed one of the new stop.
        let again = ids(&first_batch(&cfg, &ctx).await);
        assert_eq!(again[0], (caught[0].0.clone(), false), "{again:?}");
        assert!(again.len() <= 2, "skipped firings stay skipped: {again:?}");

        // catch_up = "all" after the same minute: every second of it, at most max_catch_up.
        let dir = tempfile::tempdir().unwrap();
        let ctx = SourceContext {
            state_dir: dir.path().to_owned(),
            ..ctx
        };
        let state = super::super::state::StateFile::new(dir.path());
        state.begin(Utc::now() - Duration::seconds(60)).unwrap();
        let all = ids(&first_batch(&config("all"), &ctx).await);
        assert!((59..=61).contains(&all.len()), "{}", all.len());
        assert!(all.iter().all(|(_, c)| *c));
        let saved = super::super::state::StateFile::new(dir.path());
        assert_eq!(saved.load().unwrap().unwrap().pending.len(), all.len());
    }
}

#[test]
fn a_cron_that_never_fires_has_no_next_firing() {
    let started = std::time::Instant::now();
    let s = schedule("cron(0 0 30 2 ? *)", "UTC");
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), None);
    assert_eq!(s.last_at_or_before(utc("2026-01-01T00:00:00Z")), None);
    eprintln!("took {:?}", started.elapsed());
    // `weir check` says so.
    let cfg: super::ScheduleSourceConfig =
        toml::from_str("schedule = \"cron(0 0 30 2 ? *)\"").unwrap();
    assert_eq!(
        cfg.compile().err().map(|(k, e)| format!("{k}: {e}")),
        Some("schedule: `cron(0 0 30 2 ? *)` never fires".into())
    );
    let cfg: super::ScheduleSourceConfig = toml::from_str(
        "schedule = \"at(2026-12-24T18:00:00)\"\nend = \"2026-12-01T00:00:00Z\"",
    )
    .unwrap();
    assert_eq!(
        cfg.compile().err().map(|(k, e)| format!("{k}: {e}")),
        Some("schedule: `at(2026-12-24T18:00:00)` never fires between start and end".into())
    );
}
