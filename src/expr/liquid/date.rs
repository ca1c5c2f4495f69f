//! The `date` filter: JavaScript's date parsing for the common formats, and liquidjs's
//! strftime. Times are in UTC, as on Segment's servers.

use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::value::LValue;

/// The time a value names: numbers and digit strings are seconds since 1970, `now` and
/// `today` the current time, other strings ISO 8601 or RFC 2822 dates. `None` when it names
/// no time (the filter then returns its input).
pub fn parse(v: &LValue) -> Option<OffsetDateTime> {
    match v {
        LValue::Num(n) => from_seconds(*n),
        LValue::Bool(b) => from_seconds(f64::from(u8::from(*b))),
        LValue::Str(s) => {
            let s = s.trim();
            if s == "now" || s == "today" {
                return Some(OffsetDateTime::now_utc());
            }
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return from_seconds(s.parse().ok()?);
            }
            parse_text(s)
        }
        _ => None,
    }
}

/// JavaScript's dates reach 8.64e15 ms either side of 1970; beyond that a `Date` is
/// invalid, and the filter returns its input.
const JS_MAX_MS: i128 = 8_640_000_000_000_000;

fn from_seconds(n: f64) -> Option<OffsetDateTime> {
    if !n.is_finite() {
        return None;
    }
    // `as` saturates, so a huge number stays a huge number and is refused here rather
    // than overflowing the nanoseconds below.
    let ms = (n * 1000.0).trunc() as i128;
    if ms.abs() > JS_MAX_MS {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()
}

fn parse_text(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc2822) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    // ISO forms JavaScript also accepts: a date alone, a space for the `T`, no seconds, a
    // lowercase `z`, `+hhmm` offsets, slashes in the date.
    let (date_part, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut nums = date_part.split(['-', '/']);
    let year: i32 = nums.next()?.parse().ok()?;
    let month: u8 = nums.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u8 = nums.next().map_or(Some(1), |d| d.parse().ok())?;
    if nums.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let Some(rest) = rest else {
        return Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc());
    };
    let rest = rest.trim();
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let mut parts = clock.trim().split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let (second, nanos) = match parts.next() {
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            (whole.parse().ok()?, frac.parse().ok()?)
        }
        None => (0u8, 0u32),
    };
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let offset = match offset {
        None | Some("Z") | Some("z") => UtcOffset::UTC,
        Some(o) => {
            let sign: i8 = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let h: i8 = digits[..2].parse().ok()?;
            let m: i8 = digits[2..].parse().ok()?;
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The padding a strftime format asks for (the sum of its `%[flags]WIDTH` widths), counted
/// against the render's memory limit before the padding is made.
pub fn padding(format: &str) -> u64 {
    let mut total: u64 = 0;
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        rest = rest[at + 1..].trim_start_matches(['-', '_', '0', '^', '#']);
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let width: u64 = rest[..digits].parse().unwrap_or(u64::MAX);
        if digits > 0 {
            total = total.saturating_add(width);
        }
        rest = &rest[digits..];
    }
    total
}

/// liquidjs's strftime: `%[flags][width]conversion`, flags `-` (no padding), `_` (spaces),
/// `0` (zeros), `^` and `#` (upper case). Unknown conversions stay as written.
pub fn strftime(t: &OffsetDateTime, format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-_0^#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() {
                width.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(conv) = chars.next() else {
            out.push('%');
            out.push_str(&flags);
            out.push_str(&width);
            break;
        };
        match convert(t, conv) {
            Some((value, pad_width, pad_char)) => {
                let mut v = value;
                let width: usize = width.parse().unwrap_or(pad_width);
                let pad_char = if flags.contains('_') {
                    ' '
                } else if flags.contains('0') {
                    '0'
                } else {
                    pad_char
                };
                if !flags.contains('-') && v.chars().count() < width {
                    let pad: String =
                        std::iter::repeat_n(pad_char, width - v.chars().count()).collect();
                    v = pad + &v;
                }
                if flags.contains('^') || flags.contains('#') {
                    v = v.to_uppercase();
                }
                out.push_str(&v);
            }
            None => {
                out.push('%');
                out.push_str(&flags);
                out.push_str(&width);
                out.push(conv);
            }
        }
    }
    out
}

/// A conversion's text, its default width and padding character.
fn convert(t: &OffsetDateTime, conv: char) -> Option<(String, usize, char)> {
    let wday = t.weekday().number_days_from_sunday() as usize;
    let yday = t.ordinal() as i64 - 1;
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let month = t.month() as usize - 1;
    Some(match conv {
        'a' => (DAYS[wday][..3].to_string(), 0, ' '),
        'A' => (DAYS[wday].to_string(), 0, ' '),
        'b' | 'h' => (MONTHS[month][..3].to_string(), 0, ' '),
        'B' => (MONTHS[month].to_string(), 0, ' '),
        'c' => (
            format!(
                "{}/{}/{}, {}:{:02}:{:02} {}",
                month + 1,
                t.day(),
                t.year(),
                hour12,
                t.minute(),
                t.second(),
                if t.hour() < 12 { "AM" } else { "PM" }
            ),
            0,
            ' ',
        ),
        'C' => ((t.year() / 100).to_string(), 2, '0'),
        'd' => (t.day().to_string(), 2, '0'),
        'e' => (t.day().to_string(), 2, ' '),
        'H' => (t.hour().to_string(), 2, '0'),
        'I' => (hour12.to_string(), 2, '0'),
        'j' => ((yday + 1).to_string(), 3, '0'),
        'k' => (t.hour().to_string(), 2, ' '),
        'l' => (hour12.to_string(), 2, ' '),
        'L' => (t.millisecond().to_string(), 3, '0'),
        'N' => (t.nanosecond().to_string(), 9, '0'),
        'm' => ((month + 1).to_string(), 2, '0'),
        'M' => (t.minute().to_string(), 2, '0'),
        'p' => (
            (if t.hour() < 12 { "AM" } else { "PM" }).to_string(),
            0,
            ' ',
        ),
        'P' => (
            (if t.hour() < 12 { "am" } else { "pm" }).to_string(),
            0,
            ' ',
        ),
        'q' => {
            let d = t.day();
            let suffix = match (d % 10, d % 100) {
                (_, 11..=13) => "th",
                (1, _) => "st",
                (2, _) => "nd",
                (3, _) => "rd",
                _ => "th",
            };
            (suffix.to_string(), 0, ' ')
        }
        's' => (t.unix_timestamp().to_string(), 0, ' '),
        'S' => (t.second().to_string(), 2, '0'),
        'u' => ((if wday == 0 { 7 } else { wday }).to_string(), 0, ' '),
        'U' => (((yday + 7 - wday as i64) / 7).to_string(), 2, '0'),
        'w' => (wday.to_string(), 0, ' '),
        'W' => (
            ((yday + 7 - ((wday as i64 + 6) % 7)) / 7).to_string(),
            2,
            '0',
        ),
        'x' => (format!("{}/{}/{}", month + 1, t.day(), t.year()), 0, ' '),
        'X' => (
            format!(
                "{}:{:02}:{:02} {}",
                hour12,
                t.minute(),
                t.second(),
                if t.hour() < 12 { "AM" } else { "PM" }
            ),
            0,
            ' ',
        ),
        'y' => ((t.year() % 100).to_string(), 2, '0'),
        'Y' => (t.year().to_string(), 0, ' '),
        'z' => ("+0000".to_string(), 0, ' '),
        'Z' => ("UTC".to_string(), 0, ' '),
        '%' => ("%".to_string(), 0, ' '),
        _ => return None,
    })
}
