//! Time words in a query ("last year", "in May 2023", "3 days ago", "去年", "上个月") turned
//! into the span of time they name, relative to a reference moment, without a model. Used
//! by time-aware search (`SearchOptions::time_aware`): the span becomes a filter and the
//! words leave the text the engines match.
//!
//! Understood, case-insensitively (weeks start on Monday; times are UTC):
//! - English: `today`, `yesterday`, `the day before yesterday`; `this|last|past|previous`
//!   `week|month|year`; `N days|weeks|months|years ago` (digits or one to twelve in words);
//!   `recently`, `lately`, `these days` (the last 30 days); `last monday`…`last sunday`;
//!   a year (`2023`, `in 2023`); a month with a year (`May 2023`, `in may 2023`); a month
//!   after `in`/`during` (`in May`: the latest May not after the reference); each of these
//!   after `before` (everything until its start), `after` (from its end to the reference)
//!   or `since` (from its start).
//! - Chinese: 今天, 昨天, 前天; 这周/本周/这个星期, 上周/上星期/上个星期/上礼拜;
//!   这个月/本月, 上个月/上月; 今年, 去年, 前年; 最近/近来 (the last 30 days);
//!   N天前/N周前/N个月前/N年前 (digits or 一…十); 2023年, 2023年5月, 5月/五月 (the latest such
//!   month); followed by 之前/以前 (before), 之后/以后 (after), 以来 (since).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use regex::{Captures, Regex};

/// A span of time a query named, and where its words are in the query (bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeSpan {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// The words, as a byte range of the query.
    pub words: std::ops::Range<usize>,
}

/// The days the "recently" words cover.
const RECENT_DAYS: i64 = 30;

const MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|\
    november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec";
const NUMBER_WORDS: &str = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a|an";
const WEEKDAYS: &str = "monday|tuesday|wednesday|thursday|friday|saturday|sunday";

/// A start (inclusive) and an end (exclusive).
type Span = (DateTime<Utc>, DateTime<Utc>);

/// One pattern and how its match becomes a span (`None` when the match names no valid time).
struct Rule {
    pattern: Regex,
    span: fn(&Captures<'_>, DateTime<Utc>) -> Option<Span>,
}

/// The rules, most specific first: the first that matches wins.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: String, span| Rule {
        pattern: Regex::new(&pattern).expect("a valid time-word pattern"),
        span,
    };
    // A point in time that `before`, `after` and `since` may bound.
    let point = format!(
        r"(?:(?P<pmonth>{MONTHS})\.?\s+(?P<pmyear>(?:19|20)\d\d)|(?P<pyear>(?:19|20)\d\d)|(?P<ponly>{MONTHS}))"
    );
    let zh_point = r"(?:(?P<zyear>\d{4})年(?:(?P<zmonth>\d{1,2})月)?|(?P<zonly>\d{1,2}|[一二三四五六七八九十]{1,2})月)";
    vec![
        rule(
            format!(r"(?i)\b(?P<dir>before|after|since)\s+{point}\b"),
            |c, now| bounded(&c["dir"], english_point(c, now)?, now),
        ),
        rule(
            format!(r"{zh_point}(?P<zdir>之前|以前|之后|以后|以来)"),
            |c, now| {
                let dir = match &c["zdir"] {
                    "之前" | "以前" => "before",
                    "以来" => "since",
                    _ => "after",
                };
                bounded(dir, chinese_point(c, now)?, now)
            },
        ),
        rule(r"(?i)\bthe\s+day\s+before\s+yesterday\b".into(), |_, now| {
            Some(day(now - Duration::days(2)))
        }),
        rule(r"(?i)\byesterday\b".into(), |_, now| Some(day(now - Duration::days(1)))),
        rule(r"(?i)\btoday\b".into(), |_, now| Some(day(now))),
        rule(
            format!(r"(?i)\b(?P<n>\d{{1,3}}|{NUMBER_WORDS})\s+(?P<unit>day|week|month|year)s?\s+ago\b"),
            |c, now| ago(number(&c["n"])?, &c["unit"], now),
        ),
        rule(
            r"(?i)\b(?P<which>this|last|past|previous)\s+(?P<unit>week|month|year)\b".into(),
            |c, now| {
                let back = if c["which"].eq_ignore_ascii_case("this") { 0 } else { 1 };
                ago(back, &c["unit"], now)
            },
        ),
        rule(format!(r"(?i)\blast\s+(?P<weekday>{WEEKDAYS})\b"), |c, now| {
            let wanted = weekday_index(&c["weekday"])?;
            let today = now.weekday().num_days_from_monday() as i64;
            let back = (today - wanted).rem_euclid(7);
            Some(day(now - Duration::days(if back == 0 { 7 } else { back })))
        }),
        rule(r"(?i)\b(?:recently|lately|these\s+days)\b".into(), |_, now| {
            Some((now - Duration::days(RECENT_DAYS), now))
        }),
        rule(
            format!(r"(?i)\b(?:(?:in|during)\s+)?(?P<pmonth>{MONTHS})\.?\s+(?P<pmyear>(?:19|20)\d\d)\b"),
            english_point,
        ),
        rule(format!(r"(?i)\b(?:in|during)\s+(?P<ponly>{MONTHS})\b"), english_point),
        rule(r"(?i)\b(?:in\s+|during\s+)?(?P<pyear>(?:19|20)\d\d)\b".into(), english_point),
        rule(r"前天".into(), |_, now| Some(day(now - Duration::days(2)))),
        rule(r"昨天|昨日".into(), |_, now| Some(day(now - Duration::days(1)))),
        rule(r"今天|今日".into(), |_, now| Some(day(now))),
        rule(
            r"(?P<n>\d{1,3}|[一二三四五六七八九十两]{1,2})(?:个)?(?P<unit>天|周|星期|礼拜|月|年)(?:前|之前|以前)".into(),
            |c, now| {
                let unit = match &c["unit"] {
                    "天" => "day",
                    "月" => "month",
                    "年" => "year",
                    _ => "week",
                };
                ago(number(&c["n"])?, unit, now)
            },
        ),
        rule(r"上个?(?:星期|礼拜)|上周".into(), |_, now| ago(1, "week", now)),
        rule(r"这个?(?:星期|礼拜)|这周|本周".into(), |_, now| ago(0, "week", now)),
        rule(r"上个?月".into(), |_, now| ago(1, "month", now)),
        rule(r"这个月|本月".into(), |_, now| ago(0, "month", now)),
        rule(r"前年".into(), |_, now| ago(2, "year", now)),
        rule(r"去年".into(), |_, now| ago(1, "year", now)),
        rule(r"今年".into(), |_, now| ago(0, "year", now)),
        rule(r"最近|近来|近期".into(), |_, now| {
            Some((now - Duration::days(RECENT_DAYS), now))
        }),
        rule(zh_point.into(), chinese_point),
    ]
});

/// The first span of time the query names, relative to `now`.
pub(crate) fn find(query: &str, now: DateTime<Utc>) -> Option<TimeSpan> {
    RULES.iter().find_map(|rule| {
        let captures = rule.pattern.captures(query)?;
        let (start, end) = (rule.span)(&captures, now)?;
        let words = captures.get(0)?.range();
        Some(TimeSpan { start, end, words })
    })
}

/// The query without the words of `span` (spaces tidied).
pub(crate) fn without(query: &str, span: &TimeSpan) -> String {
    let rest = format!(
        "{} {}",
        &query[..span.words.start],
        &query[span.words.end..]
    );
    rest.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn day(t: DateTime<Utc>) -> Span {
    let start = midnight(t.date_naive());
    (start, start + Duration::days(1))
}

fn month_span(year: i32, month: u32) -> Option<Span> {
    let start = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some((midnight(start), midnight(next)))
}

fn year_span(year: i32) -> Option<Span> {
    Some((
        midnight(NaiveDate::from_ymd_opt(year, 1, 1)?),
        midnight(NaiveDate::from_ymd_opt(year + 1, 1, 1)?),
    ))
}

/// The calendar unit (day, week from Monday, month, year) `n` units before the one holding
/// `now`.
fn ago(n: i64, unit: &str, now: DateTime<Utc>) -> Option<Span> {
    match unit.to_ascii_lowercase().as_str() {
        "day" => Some(day(now - Duration::days(n))),
        "week" => {
            let monday = now.date_naive()
                - Duration::days(now.weekday().num_days_from_monday() as i64 + 7 * n);
            Some((midnight(monday), midnight(monday) + Duration::days(7)))
        }
        "month" => {
            let months = now.year() as i64 * 12 + now.month0() as i64 - n;
            month_span(
                months.div_euclid(12) as i32,
                months.rem_euclid(12) as u32 + 1,
            )
        }
        "year" => year_span(now.year() - i32::try_from(n).ok()?),
        _ => None,
    }
}

/// A count in digits, English words or Chinese numerals (一…十, 两; 十一…十九 as 十X).
fn number(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let english = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve",
    ];
    let lower = text.to_ascii_lowercase();
    if lower == "a" || lower == "an" {
        return Some(1);
    }
    if let Some(i) = english.iter().position(|w| *w == lower) {
        return Some(i as i64 + 1);
    }
    chinese_number(text)
}

fn chinese_number(text: &str) -> Option<i64> {
    let digit = |c: char| "一二三四五六七八九".find(c).map(|i| i as i64 / 3 + 1);
    let chars: Vec<char> = text.chars().collect();
    match chars.as_slice() {
        ['两'] => Some(2),
        ['十'] => Some(10),
        ['十', d] => Some(10 + digit(*d)?),
        [d] => digit(*d),
        _ => None,
    }
}

fn month_index(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let prefix = lower.get(..3)?;
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    months
        .iter()
        .position(|m| *m == prefix)
        .map(|i| i as u32 + 1)
}

fn weekday_index(name: &str) -> Option<i64> {
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    days.iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|i| i as i64)
}

/// The latest month `month` that began by `now` (this year's, or last year's if it is
/// still to come).
fn latest_month(month: u32, now: DateTime<Utc>) -> Option<Span> {
    let year = if month <= now.month() {
        now.year()
    } else {
        now.year() - 1
    };
    month_span(year, month)
}

/// A year, a month of a year, or a month alone, from the `p…` groups.
fn english_point(c: &Captures<'_>, now: DateTime<Utc>) -> Option<Span> {
    if let (Some(month), Some(year)) = (c.name("pmonth"), c.name("pmyear")) {
        return month_span(year.as_str().parse().ok()?, month_index(month.as_str())?);
    }
    if let Some(year) = c.name("pyear") {
        return year_span(year.as_str().parse().ok()?);
    }
    latest_month(month_index(c.name("ponly")?.as_str())?, now)
}

/// The same from the `z…` groups (2023年, 2023年5月, 5月).
fn chinese_point(c: &Captures<'_>, now: DateTime<Utc>) -> Option<Span> {
    if let Some(year) = c.name("zyear") {
        let year: i32 = year.as_str().parse().ok()?;
        return match c.name("zmonth") {
            Some(month) => month_span(year, month.as_str().parse().ok()?),
            None => year_span(year),
        };
    }
    let month = number(c.name("zonly")?.as_str())?;
    latest_month(
        u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?,
        now,
    )
}

/// `before` a span: from the beginning until its start; `after`: from its end until `now`;
/// `since`: from its start until `now`.
fn bounded(direction: &str, (start, end): Span, now: DateTime<Utc>) -> Option<Span> {
    match direction.to_ascii_lowercase().as_str() {
        "before" => Some((DateTime::<Utc>::MIN_UTC, start)),
        "after" => Some((end, now.max(end))),
        "since" => Some((start, now.max(end))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(query: &str) -> Option<(String, String, String)> {
        // A Wednesday.
        let now = crate::types::parse_time("2026-12-09T15:30:00Z").unwrap();
        find(query, now).map(|s| {
            let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
            (fmt(s.start), fmt(s.end), without(query, &s))
        })
    }

    fn check(query: &str, start: &str, end: &str, rest: &str) {
        assert_eq!(
            span(query),
            Some((start.into(), end.into(), rest.into())),
            "{query}"
        );
    }

    #[test]
    fn english_time_words_name_their_span() {
        check(
            "what did I eat yesterday",
            "2026-12-08",
            "2026-12-09",
            "what did I eat",
        );
        check(
            "plans for today?",
            "2026-12-09",
            "2026-12-10",
            "plans for ?",
        );
        check(
            "the day before yesterday at work",
            "2026-12-07",
            "2026-12-08",
            "at work",
        );
        check(
            "where did Alice live last year",
            "2025-01-01",
            "2026-01-01",
            "where did Alice live",
        );
        check(
            "This month's budget",
            "2026-12-01",
            "2027-01-01",
            "'s budget",
        );
        check(
            "books read last week",
            "2026-11-30",
            "2026-12-07",
            "books read",
        );
        check("trips in 2023", "2023-01-01", "2024-01-01", "trips");
        check(
            "what happened in May",
            "2026-05-01",
            "2026-06-01",
            "what happened",
        );
        check(
            "concerts in December",
            "2026-12-01",
            "2027-01-01",
            "concerts",
        );
        check("jobs in Feb 2024", "2024-02-01", "2024-03-01", "jobs");
        check(
            "moves before March 2024",
            "-262143-01-01",
            "2024-03-01",
            "moves",
        );
        check("books since 2025", "2025-01-01", "2026-12-09", "books");
        check("news after 2025", "2026-01-01", "2026-12-09", "news");
        check("3 days ago", "2026-12-06", "2026-12-07", "");
        check(
            "two months ago she called",
            "2026-10-01",
            "2026-11-01",
            "she called",
        );
        check(
            "what did we do last Friday",
            "2026-12-04",
            "2026-12-05",
            "what did we do",
        );
        check("anything recently", "2026-11-09", "2026-12-09", "anything");
        check("last month", "2026-11-01", "2026-12-01", "");
    }

    #[test]
    fn chinese_time_words_name_their_span() {
        check("我去年住在哪里", "2025-01-01", "2026-01-01", "我 住在哪里");
        check(
            "最近看了什么电影",
            "2026-11-09",
            "2026-12-09",
            "看了什么电影",
        );
        check("昨天吃了什么", "2026-12-08", "2026-12-09", "吃了什么");
        check("上个月的账单", "2026-11-01", "2026-12-01", "的账单");
        check(
            "2023年去了哪些地方",
            "2023-01-01",
            "2024-01-01",
            "去了哪些地方",
        );
        check("2024年3月搬家", "2024-03-01", "2024-04-01", "搬家");
        check("五月的计划", "2026-05-01", "2026-06-01", "的计划");
        check("三天前", "2026-12-06", "2026-12-07", "");
        check("2020年以前的工作", "-262143-01-01", "2020-01-01", "的工作");
        check("本周会议", "2026-12-07", "2026-12-14", "会议");
    }

    #[test]
    fn queries_without_time_words_name_none() {
        for query in [
            "what does bob do for a living",
            "I may go",
            "march on",
            "the year of the dragon",
            "咖啡还是茶",
            "room 2B",
        ] {
            assert_eq!(span(query), None, "{query}");
        }
    }
}
