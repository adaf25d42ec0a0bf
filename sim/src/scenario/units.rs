//! Unit-carrying values of scenario files: durations (`"120ms"`, `"00:20:00"`), rates
//! (`"1000/s"`), sizes (`"256KB"`), plain counts (`"4"`) and distributions of them
//! (`"exp(10ms)"`, `"lognormal(mean=40ms, sd=30ms)"`).
//!
//! Parsing is strict and explains itself: every error says what was expected, the
//! accepted units and an example, on one line, without a position (the scenario loader
//! adds file, line, column and key). Formatting is canonical and exact: every `format_*`
//! output parses back to the same value.
//!
//! Values are in base units: nanoseconds for durations, bytes for sizes (multiples of
//! 1024, the Windows convention), events per second for rates, plain numbers for counts.

use std::fmt;
use std::str::FromStr;

use w3sim_models::dist::Dist;

/// What kind of quantity a value is; decides the accepted units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    /// Nanoseconds; units ns, us, ms, s, m|min, h, d, or `hh:mm:ss`.
    Duration,
    /// Bytes; units B, KB, MB, GB, TB (1024 multiples).
    Size,
    /// A plain number without unit.
    Count,
}

/// Error: a human message (no position; the caller adds file/line/column/key).
#[derive(Clone, Debug, PartialEq)]
pub struct UnitError(pub String);

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnitError {}

// ---------------------------------------------------------------------------------------
// Units and error messages
// ---------------------------------------------------------------------------------------

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_MIN: u64 = 60 * NS_PER_S;
const NS_PER_H: u64 = 60 * NS_PER_MIN;
const NS_PER_D: u64 = 24 * NS_PER_H;

/// Canonical duration units, largest first.
const DURATION_UNITS: [(&str, u64); 7] = [
    ("d", NS_PER_D),
    ("h", NS_PER_H),
    ("m", NS_PER_MIN),
    ("s", NS_PER_S),
    ("ms", NS_PER_MS),
    ("us", NS_PER_US),
    ("ns", 1),
];

/// Canonical size units, largest first.
const SIZE_UNITS: [(&str, u64); 5] = [
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("KB", 1 << 10),
    ("B", 1),
];

/// Every accepted duration unit spelling (matched case-insensitively), for suggestions.
const DURATION_SPELLINGS: [&str; 10] = ["ns", "us", "µs", "μs", "ms", "s", "m", "min", "h", "d"];
const SIZE_SPELLINGS: [&str; 9] = ["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
const RATE_SPELLINGS: [&str; 5] = ["s", "ms", "min", "m", "h"];

fn duration_factor(unit: &str) -> Option<u64> {
    Some(match unit.to_lowercase().as_str() {
        "ns" => 1,
        "us" | "µs" | "μs" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        "m" | "min" => NS_PER_MIN,
        "h" => NS_PER_H,
        "d" => NS_PER_D,
        _ => return None,
    })
}

fn size_factor(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        "tb" | "tib" => 1 << 40,
        _ => return None,
    })
}

/// Common misspellings of units and what they most likely mean.
fn unit_alias(unit: &str, what: What) -> Option<&'static str> {
    let u = unit.to_lowercase();
    let u = u.trim_end_matches('.');
    match what {
        What::Duration | What::Rate => Some(match u {
            "nsec" | "nsecs" | "nanos" | "nanosecond" | "nanoseconds" => "ns",
            "usec" | "usecs" | "micros" | "microsecond" | "microseconds" => "us",
            "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
            "sec" | "secs" | "second" | "seconds" => "s",
            "mins" | "minute" | "minutes" => "min",
            "hr" | "hrs" | "hour" | "hours" => "h",
            "day" | "days" => "d",
            _ => return None,
        }),
        What::Size => Some(match u {
            "byte" | "bytes" => "B",
            "k" | "kbyte" | "kbytes" | "kilobyte" | "kilobytes" => "KB",
            "mbyte" | "mbytes" | "megabyte" | "megabytes" => "MB",
            "gbyte" | "gbytes" | "gigabyte" | "gigabytes" => "GB",
            "tbyte" | "tbytes" | "terabyte" | "terabytes" => "TB",
            _ => return None,
        }),
        What::Count | What::Plain(_) => None,
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
fn closest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_lowercase();
    if lower.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &'a str)> = None;
    for &c in candidates {
        let cl = c.to_lowercase();
        let d = strsim::damerau_levenshtein(&lower, &cl);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let n = lower.chars().count();
    if d <= 1.max(n / 3) {
        return Some(c);
    }
    // A prefix either way ("exponential" -> "exp", "norm" -> "normal").
    candidates.iter().copied().find(|c| {
        let cl = c.to_lowercase();
        n >= 2 && cl.chars().count() >= 2 && (lower.starts_with(&cl) || cl.starts_with(&lower))
    })
}

/// What a quantity parser expects; decides units, example and wording of errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Duration,
    Size,
    Rate,
    Count,
    /// A plain number with the given example (distribution shapes, scv).
    Plain(&'static str),
}

impl What {
    fn of(kind: UnitKind) -> What {
        match kind {
            UnitKind::Duration => What::Duration,
            UnitKind::Size => What::Size,
            UnitKind::Count => What::Count,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            What::Duration => "duration",
            What::Size => "size",
            What::Rate => "rate",
            What::Count | What::Plain(_) => "number",
        }
    }

    fn expected(self) -> String {
        match self {
            What::Duration => "expected a duration such as \"120ms\"".into(),
            What::Size => "expected a size such as \"256KB\"".into(),
            What::Rate => "expected a rate such as \"1000/s\"".into(),
            What::Count => "expected a plain number such as \"4\"".into(),
            What::Plain(ex) => format!("expected a plain number such as \"{ex}\""),
        }
    }

    fn accepted(self) -> &'static str {
        match self {
            What::Duration => "(accepted units: ns, us, ms, s, m|min, h, d, or hh:mm:ss)",
            What::Size => {
                "(accepted units: B, KB, MB, GB, TB in multiples of 1024, also KiB, MiB, GiB, TiB)"
            }
            What::Rate => "(accepted units: N/s, N/ms, N/min or N/m, N/h)",
            What::Count | What::Plain(_) => "(a plain number takes no unit)",
        }
    }

    /// `expected ... : {detail} (accepted units ...)[; did you mean ...?]`
    fn err(self, detail: impl fmt::Display, suggestion: Option<String>) -> UnitError {
        let mut msg = format!("{}: {detail} {}", self.expected(), self.accepted());
        if let Some(s) = suggestion {
            msg.push_str("; did you mean ");
            msg.push_str(&s);
            msg.push('?');
        }
        UnitError(msg)
    }
}

// ---------------------------------------------------------------------------------------
// Numbers: exact decimal lexing
// ---------------------------------------------------------------------------------------

/// A decimal number as written: `(-1)^neg * int(digits) * 10^exp`, digits without leading
/// or trailing zeros (empty for zero).
#[derive(Debug)]
struct Num<'a> {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
    /// The number as written (with underscores), for messages.
    text: &'a str,
}

/// Significant digits kept for exact arithmetic; 24 digits times the largest unit factor
/// (8.64e13 ns per day) stays below u128::MAX, and 24 > the 20 digits of u64::MAX.
const MAX_DIGITS: usize = 24;
const EXP_LIMIT: i64 = 100_000;

/// Lexes a leading number; returns it and the rest of the string.
fn lex_number(s: &str) -> Option<(Num<'_>, &str)> {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut neg = false;
    if i < n && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let mut all: Vec<u8> = Vec::new();
    let mut frac: i64 = 0;
    let digits_run = |i: &mut usize, all: &mut Vec<u8>, frac: Option<&mut i64>| {
        let mut count = 0i64;
        while *i < n {
            let c = b[*i];
            if c.is_ascii_digit() {
                all.push(c - b'0');
                count += 1;
                *i += 1;
            } else if c == b'_' && count > 0 && *i + 1 < n && b[*i + 1].is_ascii_digit() {
                *i += 1;
            } else {
                break;
            }
        }
        if let Some(f) = frac {
            *f += count;
        }
        count
    };
    let int_digits = digits_run(&mut i, &mut all, None);
    let mut frac_digits = 0;
    if i + 1 < n && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        frac_digits = digits_run(&mut i, &mut all, Some(&mut frac));
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    let mut exp: i64 = 0;
    if i < n && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        let mut eneg = false;
        if j < n && (b[j] == b'+' || b[j] == b'-') {
            eneg = b[j] == b'-';
            j += 1;
        }
        if j < n && b[j].is_ascii_digit() {
            while j < n && b[j].is_ascii_digit() {
                exp = (exp * 10 + i64::from(b[j] - b'0')).min(EXP_LIMIT);
                j += 1;
            }
            if eneg {
                exp = -exp;
            }
            i = j;
        }
    }
    let lead = all.iter().take_while(|&&d| d == 0).count();
    all.drain(..lead);
    exp -= frac;
    while all.last() == Some(&0) {
        all.pop();
        exp += 1;
    }
    Some((
        Num {
            neg,
            digits: all,
            exp,
            text: &s[..i],
        },
        &s[i..],
    ))
}

impl Num<'_> {
    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The leading `MAX_DIGITS` digits as an integer, the exponent that goes with them,
    /// and whether nonzero digits were dropped.
    fn mantissa(&self) -> (u128, i64, bool) {
        let kept = self.digits.len().min(MAX_DIGITS);
        let m = self.digits[..kept]
            .iter()
            .fold(0u128, |m, &d| m * 10 + u128::from(d));
        let dropped = (self.digits.len() - kept) as i64;
        (m, self.exp + dropped, dropped > 0)
    }

    /// `|self| * factor`, correctly rounded to f64 (apart from >24-digit inputs).
    fn to_f64(&self, factor: u64) -> f64 {
        if self.is_zero() {
            return 0.0;
        }
        let (m, e, sticky) = self.mantissa();
        let n = m * u128::from(factor);
        let text = if sticky {
            format!("{n}1e{}", e - 1)
        } else {
            format!("{n}e{e}")
        };
        text.parse::<f64>().unwrap_or(f64::INFINITY)
    }

    /// `|self| * factor` as an exact integer and its fractional remainder.
    fn to_exact(&self, factor: u64) -> Exact {
        if self.is_zero() {
            return Exact::Val(0, Frac::Zero);
        }
        let (m, e, sticky) = self.mantissa();
        let n = m * u128::from(factor);
        if e >= 0 {
            if e > 38 {
                return Exact::Overflow;
            }
            // A sticky integer has more than 24 digits: overflow anyway past u64.
            match n.checked_mul(10u128.pow(e as u32)) {
                Some(v) if !sticky => Exact::Val(v, Frac::Zero),
                _ => Exact::Overflow,
            }
        } else {
            let k = -e;
            if k > 38 {
                // n < 8.64e37 < 0.5e39: below one half.
                return Exact::Val(0, Frac::Below);
            }
            let p = 10u128.pow(k as u32);
            let (q, r) = (n / p, n % p);
            let frac = match (r.cmp(&(p - r)), r == 0, sticky) {
                (_, true, false) => Frac::Zero,
                (std::cmp::Ordering::Less, _, _) => Frac::Below,
                (std::cmp::Ordering::Equal, _, false) => Frac::Half,
                _ => Frac::Above,
            };
            Exact::Val(q, frac)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frac {
    Zero,
    Below,
    Half,
    Above,
}

enum Exact {
    Overflow,
    Val(u128, Frac),
}

/// A trimmed quantity split into its number and (trimmed) unit text.
struct Split<'a> {
    text: &'a str,
    num: Num<'a>,
    unit: &'a str,
}

fn split_quantity(s: &str, what: What) -> Result<Split<'_>, UnitError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(what.err("got an empty string", None));
    }
    let Some((num, rest)) = lex_number(text) else {
        return Err(what.err(
            format_args!("\"{text}\" does not start with a number"),
            None,
        ));
    };
    Ok(Split {
        text,
        num,
        unit: rest.trim(),
    })
}

fn negative_err(sp: &Split<'_>, what: What) -> UnitError {
    what.err(
        format_args!(
            "\"{}\" is negative; a {} cannot be negative",
            sp.text,
            what.noun()
        ),
        None,
    )
}

fn unknown_unit_err(sp: &Split<'_>, what: What, spellings: &[&str]) -> UnitError {
    // A unit cut short ("4G", "5M") means the one it begins (GB, MB), not the nearest by
    // spelling ("4B").
    let prefix_of = || {
        spellings
            .iter()
            .copied()
            .filter(|u| u.len() > sp.unit.len() && !sp.unit.is_empty())
            .find(|u| {
                u.get(..sp.unit.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(sp.unit))
            })
    };
    let sugg = unit_alias(sp.unit, what)
        .or_else(prefix_of)
        .or_else(|| closest(sp.unit, spellings))
        .map(|u| format!("\"{}{u}\"", sp.num.text));
    what.err(
        format_args!("unknown unit \"{}\" in \"{}\"", sp.unit, sp.text),
        sugg,
    )
}

// ---------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------

enum DurVal<'a> {
    Exact(u64),
    Scaled(Num<'a>, u64),
}

fn duration_value(s: &str) -> Result<DurVal<'_>, UnitError> {
    let w = What::Duration;
    let text = s.trim();
    if text.contains(':') {
        return parse_timespan(text).map(DurVal::Exact);
    }
    let sp = split_quantity(s, w)?;
    if sp.num.neg && !sp.num.is_zero() {
        return Err(negative_err(&sp, w));
    }
    if sp.unit.is_empty() {
        let n = sp.num.text;
        return Err(w.err(
            format_args!("\"{n}\" has no unit"),
            Some(format!("\"{n}ms\" or \"{n}s\"")),
        ));
    }
    match duration_factor(sp.unit) {
        Some(f) => Ok(DurVal::Scaled(sp.num, f)),
        None => Err(unknown_unit_err(&sp, w, &DURATION_SPELLINGS)),
    }
}

fn too_long(text: &str) -> UnitError {
    What::Duration.err(
        format_args!("\"{text}\" is too long (the maximum is 213503d, about 584 years)"),
        None,
    )
}

/// IIS/.NET TimeSpan: `hh:mm:ss`, `d.hh:mm:ss`, with optional `.fffffff` seconds fraction.
fn parse_timespan(text: &str) -> Result<u64, UnitError> {
    let w = What::Duration;
    let bad = |why: &str| {
        w.err(
            format_args!("\"{text}\" is not a valid [d.]hh:mm:ss[.fff] time span: {why}"),
            None,
        )
    };
    if text.starts_with('-') {
        return Err(w.err(
            format_args!("\"{text}\" is negative; a duration cannot be negative"),
            None,
        ));
    }
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 3 {
        return Err(bad(
            "write hours, minutes and seconds, e.g. \"00:20:00\" for 20 minutes",
        ));
    }
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    let int = |p: &str| -> Result<u64, UnitError> {
        if !digits(p) {
            return Err(bad(&format!("\"{p}\" is not a whole number")));
        }
        p.parse::<u64>().map_err(|_| too_long(text))
    };
    let (days, hours) = match parts[0].split_once('.') {
        Some((d, h)) => (Some(int(d)?), int(h)?),
        None => (None, int(parts[0])?),
    };
    let minutes = int(parts[1])?;
    let (secs, frac) = match parts[2].split_once('.') {
        Some((s, f)) => {
            if !digits(f) || f.len() > 9 {
                return Err(bad("the seconds fraction must have 1 to 9 digits"));
            }
            (int(s)?, f)
        }
        None => (int(parts[2])?, ""),
    };
    if minutes >= 60 || secs >= 60 {
        return Err(bad("minutes and seconds must be below 60"));
    }
    if days.is_some() && hours >= 24 {
        return Err(bad("hours must be below 24 when days are given"));
    }
    let frac_ns = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse::<u64>().unwrap_or(0)
    };
    let total = days
        .unwrap_or(0)
        .checked_mul(24)
        .and_then(|h| h.checked_add(hours))
        .and_then(|h| h.checked_mul(60))
        .and_then(|m| m.checked_add(minutes))
        .and_then(|m| m.checked_mul(60))
        .and_then(|s| s.checked_add(secs))
        .and_then(|s| s.checked_mul(NS_PER_S))
        .and_then(|ns| ns.checked_add(frac_ns));
    total.ok_or_else(|| too_long(text))
}

/// `seed`: a TOML integer, or a string of digits for a seed above 2^63 − 1 (the largest
/// integer TOML has). A farm's servers get seeds drawn from all 64 bits, and the
/// `scenario.toml` written for each must read back.
pub mod seed {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(*v) {
            Ok(i) => s.serialize_i64(i),
            Err(_) => s.serialize_str(&v.to_string()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(Seed)
    }

    struct Seed;

    const EXPECTED: &str = "an integer from 0 to 18446744073709551615 (above 9223372036854775807, \
                            the largest TOML integer, as a string of digits: seed = \"…\")";

    impl de::Visitor<'_> for Seed {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTED)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("seed {v}: expected {EXPECTED}")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("seed \"{v}\": expected {EXPECTED}")))
        }
    }
}

/// Parses a duration (`"120ms"`, `"1.5s"`, `"00:20:00"`) into whole nanoseconds
/// (fractions of a nanosecond are rounded to nearest).
pub fn parse_duration(s: &str) -> Result<u64, UnitError> {
    match duration_value(s)? {
        DurVal::Exact(ns) => Ok(ns),
        DurVal::Scaled(num, f) => match num.to_exact(f) {
            Exact::Val(q, frac) => {
                let q = if matches!(frac, Frac::Half | Frac::Above) {
                    q + 1
                } else {
                    q
                };
                u64::try_from(q).map_err(|_| too_long(s.trim()))
            }
            Exact::Overflow => Err(too_long(s.trim())),
        },
    }
}

/// Formats nanoseconds exactly in the largest unit that divides them: `"120ms"`, `"20m"`.
pub fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    for (name, f) in DURATION_UNITS {
        if ns % f == 0 {
            return format!("{}{name}", ns / f);
        }
    }
    unreachable!("1 divides every integer")
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

fn size_split(s: &str) -> Result<(Split<'_>, u64), UnitError> {
    let w = What::Size;
    let sp = split_quantity(s, w)?;
    if sp.num.neg && !sp.num.is_zero() {
        return Err(negative_err(&sp, w));
    }
    if sp.unit.is_empty() {
        let n = sp.num.text;
        return Err(w.err(
            format_args!("\"{n}\" has no unit"),
            Some(format!("\"{n}B\" or \"{n}KB\"")),
        ));
    }
    match size_factor(sp.unit) {
        Some(f) => Ok((sp, f)),
        None => Err(unknown_unit_err(&sp, w, &SIZE_SPELLINGS)),
    }
}

/// Parses a size (`"256KB"`, `"1.5MB"`, `"1500B"`; K = 1024) into bytes. The value must be
/// a whole number of bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let (sp, f) = size_split(s)?;
    let too_big = || {
        What::Size.err(
            format_args!("\"{}\" is too large (the maximum is 2^64-1 bytes)", sp.text),
            None,
        )
    };
    match sp.num.to_exact(f) {
        Exact::Val(q, Frac::Zero) => u64::try_from(q).map_err(|_| too_big()),
        Exact::Val(..) => Err(What::Size.err(
            format_args!("\"{}\" is not a whole number of bytes", sp.text),
            None,
        )),
        Exact::Overflow => Err(too_big()),
    }
}

/// Formats bytes exactly in the largest unit that divides them: `"256MB"`, `"1500B"`.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".into();
    }
    for (name, f) in SIZE_UNITS {
        if bytes % f == 0 {
            return format!("{}{name}", bytes / f);
        }
    }
    unreachable!("1 divides every integer")
}

// ---------------------------------------------------------------------------------------
// Rates
// ---------------------------------------------------------------------------------------

/// Parses a rate (`"1000/s"`, `"5/ms"`, `"30/min"`, `"2/h"`) into events per second.
pub fn parse_rate(s: &str) -> Result<f64, UnitError> {
    let w = What::Rate;
    let sp = split_quantity(s, w)?;
    if sp.num.neg && !sp.num.is_zero() {
        return Err(negative_err(&sp, w));
    }
    let n = sp.num.text;
    let Some(unit) = sp.unit.strip_prefix('/') else {
        if sp.unit.is_empty() {
            return Err(w.err(
                format_args!("\"{n}\" has no unit"),
                Some(format!("\"{n}/s\"")),
            ));
        }
        let sugg = unit_alias(sp.unit, w)
            .or_else(|| duration_factor(sp.unit).map(|_| "s"))
            .or_else(|| {
                let u = sp.unit.trim_start_matches("per").trim();
                unit_alias(u, w).or_else(|| closest(u, &RATE_SPELLINGS))
            })
            .map(|u| format!("\"{n}/{u}\""));
        return Err(w.err(
            format_args!(
                "\"{}\" is not a rate; write a number per time unit",
                sp.text
            ),
            sugg,
        ));
    };
    let unit = unit.trim();
    let v = match unit.to_lowercase().as_str() {
        "s" => sp.num.to_f64(1),
        "ms" => sp.num.to_f64(1000),
        "m" | "min" => sp.num.to_f64(1) / 60.0,
        "h" => sp.num.to_f64(1) / 3600.0,
        _ => {
            let sugg = unit_alias(unit, w)
                .or_else(|| closest(unit, &RATE_SPELLINGS))
                .map(|u| format!("\"{n}/{u}\""));
            return Err(w.err(
                format_args!("unknown unit \"/{unit}\" in \"{}\"", sp.text),
                sugg,
            ));
        }
    };
    if !v.is_finite() {
        return Err(w.err(format_args!("\"{}\" is too large", sp.text), None));
    }
    if v > MAX_RATE_PER_S {
        return Err(w.err(
            format_args!(
                "\"{}\" is more than one event per nanosecond, the clock's resolution \
                 (at most \"1000000000/s\")",
                sp.text
            ),
            None,
        ));
    }
    Ok(v)
}

/// The highest rate a scenario may give: one event per nanosecond (w3sim's clock).
pub const MAX_RATE_PER_S: f64 = 1e9;

/// Formats events per second exactly: the shortest `/s` form (`"1000/s"`, `"0.5/s"`),
/// unless a whole number per minute or hour is shorter (`"1/min"` rather than
/// `"0.016666666666666666/s"`).
pub fn format_rate(per_s: f64) -> String {
    if per_s == 0.0 {
        return "0/s".into();
    }
    let base = format!("{}/s", format_number(per_s));
    if !per_s.is_finite() || per_s < 0.0 || per_s.fract() == 0.0 {
        return base;
    }
    for (mul, unit) in [(60.0, "min"), (3600.0, "h")] {
        let n = per_s * mul;
        if n.fract() == 0.0 {
            let c = format!("{}/{unit}", format_number(n));
            if c.len() < base.len() && parse_rate(&c) == Ok(per_s) {
                return c;
            }
        }
    }
    base
}

// ---------------------------------------------------------------------------------------
// Generic quantities
// ---------------------------------------------------------------------------------------

fn parse_plain(s: &str, what: What) -> Result<f64, UnitError> {
    let sp = split_quantity(s, what)?;
    if sp.num.neg && !sp.num.is_zero() {
        return Err(negative_err(&sp, what));
    }
    if !sp.unit.is_empty() {
        let detail = if duration_factor(sp.unit).is_some() || size_factor(sp.unit).is_some() {
            format!("\"{}\" has a unit", sp.text)
        } else {
            format!(
                "unexpected \"{}\" after the number in \"{}\"",
                sp.unit, sp.text
            )
        };
        return Err(what.err(detail, Some(format!("\"{}\"", sp.num.text))));
    }
    let v = sp.num.to_f64(1);
    if !v.is_finite() {
        return Err(what.err(format_args!("\"{}\" is too large", sp.text), None));
    }
    Ok(v)
}

/// Parses a quantity of the given kind into base units as `f64` (durations may be
/// fractional nanoseconds, sizes fractional bytes). Negative values are rejected.
pub fn parse_quantity(s: &str, kind: UnitKind) -> Result<f64, UnitError> {
    let v = match kind {
        UnitKind::Count => return parse_plain(s, What::Count),
        UnitKind::Duration => match duration_value(s)? {
            DurVal::Exact(ns) => return Ok(ns as f64),
            DurVal::Scaled(num, f) => num.to_f64(f),
        },
        UnitKind::Size => {
            let (sp, f) = size_split(s)?;
            sp.num.to_f64(f)
        }
    };
    if !v.is_finite() {
        let what = What::of(kind);
        return Err(what.err(format_args!("\"{}\" is too large", s.trim()), None));
    }
    Ok(v)
}

/// Shortest exact text of a float: Rust's shortest round-trip `{}` form, or the `{:e}`
/// form when that is shorter for long numbers (`1e300`, `1.5e-200`).
fn format_number(x: f64) -> String {
    let a = format!("{x}");
    if a.len() > 16 {
        let b = format!("{x:e}");
        if b.len() < a.len() {
            return b;
        }
    }
    a
}

fn format_scaled(v: f64, units: &[(&str, u64)], zero: &str, kind: UnitKind) -> String {
    let base = units[units.len() - 1].0;
    if v == 0.0 {
        return zero.into();
    }
    if !v.is_finite() || v < 0.0 {
        return format!("{}{base}", format_number(v));
    }
    let exact = |c: &String| parse_quantity(c, kind).is_ok_and(|p| p == v);
    // First the largest unit giving a whole number, then the largest giving a value >= 1.
    for whole in [true, false] {
        for &(name, f) in units {
            let q = v / f as f64;
            let ok = if whole { q.fract() == 0.0 } else { q >= 1.0 };
            if ok {
                let c = format!("{}{name}", format_number(q));
                if exact(&c) {
                    return c;
                }
            }
        }
    }
    format!("{}{base}", format_number(v))
}

/// Formats a quantity in base units canonically and exactly (see [`format_dist`]).
pub fn format_quantity(v: f64, kind: UnitKind) -> String {
    match kind {
        UnitKind::Duration => format_scaled(v, &DURATION_UNITS, "0s", kind),
        UnitKind::Size => format_scaled(v, &SIZE_UNITS, "0B", kind),
        UnitKind::Count => {
            if v == 0.0 {
                "0".into()
            } else {
                format_number(v)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Distributions
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// A quantity of the distribution's kind.
    Q,
    /// A plain number, with an example.
    Num(&'static str),
    /// A whole number >= 1.
    Int,
}

struct Func {
    name: &'static str,
    params: &'static [(&'static str, Arg)],
}

const FUNCS: [Func; 10] = [
    Func {
        name: "const",
        params: &[("value", Arg::Q)],
    },
    Func {
        name: "exp",
        params: &[("mean", Arg::Q)],
    },
    Func {
        name: "uniform",
        params: &[("lo", Arg::Q), ("hi", Arg::Q)],
    },
    Func {
        name: "lognormal",
        params: &[("mean", Arg::Q), ("sd", Arg::Q)],
    },
    Func {
        name: "normal",
        params: &[("mean", Arg::Q), ("sd", Arg::Q)],
    },
    Func {
        name: "erlang",
        params: &[("k", Arg::Int), ("mean", Arg::Q)],
    },
    Func {
        name: "gamma",
        params: &[("shape", Arg::Num("0.5")), ("mean", Arg::Q)],
    },
    Func {
        name: "weibull",
        params: &[("shape", Arg::Num("1.5")), ("mean", Arg::Q)],
    },
    Func {
        name: "pareto",
        params: &[("shape", Arg::Num("2.5")), ("mean", Arg::Q)],
    },
    Func {
        name: "hyperexp",
        params: &[("mean", Arg::Q), ("scv", Arg::Num("4"))],
    },
];

const FUNC_LIST: &str =
    "const, exp, uniform, lognormal, normal, erlang, gamma, weibull, pareto, hyperexp";

/// Example values (large, small) of a kind, for messages.
fn examples(kind: UnitKind) -> (&'static str, &'static str) {
    match kind {
        UnitKind::Duration => ("10ms", "5ms"),
        UnitKind::Size => ("16KB", "8KB"),
        UnitKind::Count => ("4", "2"),
    }
}

fn func_example(f: &Func, kind: UnitKind) -> String {
    let (a, b) = examples(kind);
    match f.name {
        "const" | "exp" => format!("{}({a})", f.name),
        "uniform" => format!("uniform({b}, {a})"),
        _ => {
            let args: Vec<String> = f
                .params
                .iter()
                .map(|&(p, arg)| match (p, arg) {
                    (_, Arg::Int) => format!("{p}=4"),
                    (_, Arg::Num(ex)) => format!("{p}={ex}"),
                    ("sd", _) => format!("{p}={b}"),
                    _ => format!("{p}={a}"),
                })
                .collect();
            format!("{}({})", f.name, args.join(", "))
        }
    }
}

fn dist_err(kind: UnitKind, detail: impl fmt::Display) -> UnitError {
    let (a, _) = examples(kind);
    UnitError(format!(
        "expected a distribution such as \"exp({a})\" or a single value such as \"{a}\": {detail}"
    ))
}

fn word_suggestion(word: &str) -> String {
    match closest(word, &FUNCS.map(|f| f.name)) {
        Some(c) => format!("; did you mean \"{c}\"?"),
        None => String::new(),
    }
}

/// Parses a distribution of the given kind: `exp(10ms)`, `lognormal(mean=40ms, sd=30ms)`,
/// `uniform(1ms, 3ms)`, ... or a bare value meaning `const`. The result is validated.
pub fn parse_dist(s: &str, kind: UnitKind) -> Result<Dist, UnitError> {
    let t = s.trim();
    let Some(open) = t.find('(') else {
        if t.is_empty() {
            return Err(dist_err(kind, "got an empty string"));
        }
        if t.starts_with(|c: char| c.is_alphabetic()) {
            let word: String = t.chars().take_while(|c| c.is_alphanumeric()).collect();
            return Err(UnitError(format!(
                "{}; accepted: {FUNC_LIST}{}",
                dist_err(
                    kind,
                    format_args!("\"{t}\" is neither a value nor a call like name(...)")
                ),
                word_suggestion(&word)
            )));
        }
        let v = parse_quantity(t, kind)?;
        return validated(Dist::Const(v), t, kind);
    };
    let name = t[..open].trim();
    let Some(func) = FUNCS.iter().find(|f| f.name.eq_ignore_ascii_case(name)) else {
        if name.is_empty() {
            return Err(dist_err(
                kind,
                format_args!("\"{t}\" has no distribution name before \"(\""),
            ));
        }
        return Err(UnitError(format!(
            "unknown distribution \"{name}\"; accepted: {FUNC_LIST}{}",
            word_suggestion(name)
        )));
    };
    let example = func_example(func, kind);
    let ferr = |detail: &str| UnitError(format!("{}: {detail}, e.g. \"{example}\"", func.name));
    let rest = &t[open + 1..];
    let Some(close) = rest.rfind(')') else {
        return Err(ferr(&format!("missing \")\" at the end of \"{t}\"")));
    };
    if !rest[close + 1..].trim().is_empty() {
        return Err(ferr(&format!(
            "unexpected \"{}\" after \")\"",
            rest[close + 1..].trim()
        )));
    }
    let inner = &rest[..close];
    if inner.contains(['(', ')']) {
        return Err(ferr("arguments cannot contain parentheses"));
    }
    let names: Vec<&str> = func.params.iter().map(|p| p.0).collect();
    let mut slots: [Option<&str>; 2] = [None, None];
    if !inner.trim().is_empty() {
        let mut named_seen = false;
        for (i, piece) in inner.split(',').enumerate() {
            let piece = piece.trim();
            if piece.is_empty() {
                return Err(ferr(&format!("argument {} is empty", i + 1)));
            }
            let (idx, value) = match piece.split_once('=') {
                Some((n, v)) => {
                    named_seen = true;
                    let n = n.trim();
                    let Some(idx) = names.iter().position(|p| p.eq_ignore_ascii_case(n)) else {
                        let sugg = closest(n, &names)
                            .map(|c| format!("; did you mean \"{c}\"?"))
                            .unwrap_or_default();
                        return Err(UnitError(format!(
                            "{} has no argument \"{n}\"; accepted: {}, e.g. \"{example}\"{sugg}",
                            func.name,
                            names.join(", ")
                        )));
                    };
                    (idx, v.trim())
                }
                None => {
                    if named_seen {
                        return Err(ferr(&format!(
                            "positional argument \"{piece}\" after named ones"
                        )));
                    }
                    if i >= names.len() {
                        return Err(ferr(&format!(
                            "too many arguments; {} takes {} ({})",
                            func.name,
                            names.len(),
                            names.join(", ")
                        )));
                    }
                    (i, piece)
                }
            };
            if slots[idx].is_some() {
                return Err(ferr(&format!("argument \"{}\" is given twice", names[idx])));
            }
            slots[idx] = Some(value);
        }
    }
    let missing: Vec<&str> = names
        .iter()
        .zip(slots)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(UnitError(format!(
            "{} needs {}, e.g. \"{example}\"; missing: {}",
            func.name,
            names.join(" and "),
            missing.join(", ")
        )));
    }
    let mut vals = [0.0f64; 2];
    let mut k = 0u32;
    for (i, &(pname, arg)) in func.params.iter().enumerate() {
        let text = slots[i].unwrap_or_default();
        let wrap = |e: UnitError| UnitError(format!("argument \"{pname}\" of {}: {e}", func.name));
        match arg {
            Arg::Q => vals[i] = parse_quantity(text, kind).map_err(wrap)?,
            Arg::Num(ex) => vals[i] = parse_plain(text, What::Plain(ex)).map_err(wrap)?,
            Arg::Int => {
                let v = parse_plain(text, What::Plain("4")).map_err(wrap)?;
                if v.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&v) {
                    return Err(wrap(UnitError(format!(
                        "expected a whole number from 1 to {} such as \"4\", got \"{text}\"",
                        u32::MAX
                    ))));
                }
                k = v as u32;
            }
        }
    }
    let [a, b] = vals;
    let d = match func.name {
        "const" => Dist::Const(a),
        "exp" => Dist::Exp { mean: a },
        "uniform" => Dist::Uniform { lo: a, hi: b },
        "lognormal" => Dist::Lognormal { mean: a, sd: b },
        "normal" => Dist::Normal { mean: a, sd: b },
        "erlang" => Dist::Erlang { k, mean: b },
        "gamma" => Dist::Gamma { shape: a, mean: b },
        "weibull" => Dist::Weibull { shape: a, mean: b },
        "pareto" => Dist::Pareto { shape: a, mean: b },
        _ => Dist::HyperExp { mean: a, scv: b },
    };
    validated(d, t, kind)
}

fn validated(d: Dist, text: &str, kind: UnitKind) -> Result<Dist, UnitError> {
    d.validate().map_err(|e| {
        let note = match kind {
            UnitKind::Duration => " (values in nanoseconds)",
            UnitKind::Size => " (values in bytes)",
            UnitKind::Count => "",
        };
        UnitError(format!("invalid distribution \"{text}\": {e}{note}"))
    })?;
    // A time drawn from it must fit the clock (as a duration setting must): a mean or a
    // spread beyond about 584 years is a typo, not a scenario.
    if kind == UnitKind::Duration {
        let spread = match d {
            Dist::Uniform { hi, .. } => hi,
            Dist::Lognormal { sd, .. } | Dist::Normal { sd, .. } => sd,
            _ => 0.0,
        };
        if d.mean().max(spread) > u64::MAX as f64 {
            return Err(UnitError(format!(
                "invalid distribution \"{text}\": its times are too long (the maximum is 213503d, about 584 years)"
            )));
        }
    }
    Ok(d)
}

/// Canonical text of a distribution that [`parse_dist`] parses back to an equal `Dist`.
pub fn format_dist(d: &Dist, kind: UnitKind) -> String {
    let q = |v: f64| format_quantity(v, kind);
    let n = |v: f64| format_quantity(v, UnitKind::Count);
    match *d {
        Dist::Const(v) => format!("const({})", q(v)),
        Dist::Exp { mean } => format!("exp({})", q(mean)),
        Dist::Uniform { lo, hi } => format!("uniform({}, {})", q(lo), q(hi)),
        Dist::Lognormal { mean, sd } => format!("lognormal(mean={}, sd={})", q(mean), q(sd)),
        Dist::Normal { mean, sd } => format!("normal(mean={}, sd={})", q(mean), q(sd)),
        Dist::Erlang { k, mean } => format!("erlang(k={k}, mean={})", q(mean)),
        Dist::Gamma { shape, mean } => format!("gamma(shape={}, mean={})", n(shape), q(mean)),
        Dist::Weibull { shape, mean } => format!("weibull(shape={}, mean={})", n(shape), q(mean)),
        Dist::Pareto { shape, mean } => format!("pareto(shape={}, mean={})", n(shape), q(mean)),
        Dist::HyperExp { mean, scv } => format!("hyperexp(mean={}, scv={})", q(mean), n(scv)),
    }
}

// ---------------------------------------------------------------------------------------
// Newtypes for the serde scenario structs
// ---------------------------------------------------------------------------------------

/// A duration in nanoseconds; written `"120ms"`, `"20m"`, `"00:20:00"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    /// Zero nanoseconds.
    pub const ZERO: Duration = Duration(0);

    /// The duration in seconds (for statistics and reports).
    pub fn as_secs_f64(&self) -> f64 {
        self.0 as f64 * 1e-9
    }
}

/// A rate in events per second; written `"1000/s"`, `"30/min"`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Rate(pub f64);

/// A size in bytes; written `"256KB"`, `"1500B"` (K = 1024).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

/// A distribution of durations (ns); written `"exp(10ms)"`, `"5ms"`.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationDist(pub Dist);

/// A distribution of sizes (bytes); written `"lognormal(mean=16KB, sd=8KB)"`.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeDist(pub Dist);

/// A distribution of plain numbers (fan-out counts); written `"uniform(1, 4)"` or `3`.
#[derive(Clone, Debug, PartialEq)]
pub struct CountDist(pub Dist);

macro_rules! newtype_text {
    ($ty:ident, $parse:expr, $format:expr, $expecting:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let format: fn(&$ty) -> String = $format;
                f.write_str(&format(self))
            }
        }

        impl FromStr for $ty {
            type Err = UnitError;
            fn from_str(s: &str) -> Result<Self, UnitError> {
                let parse: fn(&str) -> Result<$ty, UnitError> = $parse;
                parse(s)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(TextVisitor::<$ty>::new($expecting))
            }
        }
    };
}

/// Deserializes a newtype from its text; numbers are turned into their text so that they
/// get the same helpful message (e.g. "has no unit") or, for counts, their value.
struct TextVisitor<T> {
    expecting: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> TextVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        TextVisitor {
            expecting,
            _t: std::marker::PhantomData,
        }
    }
}

impl<'de, T: FromStr<Err = UnitError>> serde::de::Visitor<'de> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        if !v.is_finite() {
            return Err(E::custom(format!(
                "{v} is not an accepted value; {}",
                self.expecting
            )));
        }
        self.visit_str(&format_number(v))
    }

    /// TOML reads an unquoted `00:20:00` (IIS's way of writing a duration) as a local
    /// time, which reaches serde as a one-key map: its text is what was written.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match map.next_key::<String>()? {
            Some(k) if k == "$__toml_private_datetime" => {
                let text: String = map.next_value()?;
                self.visit_str(&text)
            }
            _ => Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Map,
                &self,
            )),
        }
    }
}

newtype_text!(
    Duration,
    |s| parse_duration(s).map(Duration),
    |d| format_duration(d.0),
    "a duration string such as \"120ms\", \"20m\" or \"00:20:00\""
);
newtype_text!(
    Rate,
    |s| parse_rate(s).map(Rate),
    |r| format_rate(r.0),
    "a rate string such as \"1000/s\" or \"30/min\""
);
newtype_text!(
    Size,
    |s| parse_size(s).map(Size),
    |b| format_size(b.0),
    "a size string such as \"256KB\" or \"1500B\""
);
newtype_text!(
    DurationDist,
    |s| parse_dist(s, UnitKind::Duration).map(DurationDist),
    |d| format_dist(&d.0, UnitKind::Duration),
    "a duration distribution string such as \"exp(10ms)\" or \"5ms\""
);
newtype_text!(
    SizeDist,
    |s| parse_dist(s, UnitKind::Size).map(SizeDist),
    |d| format_dist(&d.0, UnitKind::Size),
    "a size distribution string such as \"lognormal(mean=16KB, sd=8KB)\" or \"1500B\""
);
newtype_text!(
    CountDist,
    |s| parse_dist(s, UnitKind::Count).map(CountDist),
    |d| format_dist(&d.0, UnitKind::Count),
    "a number such as 4 or a distribution string such as \"uniform(1, 4)\""
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err_of<T: fmt::Debug>(r: Result<T, UnitError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => {
                assert!(!e.0.contains('\n'), "multi-line message: {}", e.0);
                e.0
            }
        }
    }

    fn has(msg: &str, parts: &[&str]) {
        for p in parts {
            assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
        }
    }

    #[test]
    fn durations_parse() {
        let cases: &[(&str, u64)] = &[
            ("120ms", 120 * NS_PER_MS),
            (" 120 ms ", 120 * NS_PER_MS),
            ("240s", 240 * NS_PER_S),
            ("20m", 20 * NS_PER_MIN),
            ("20min", 20 * NS_PER_MIN),
            ("2h", 2 * NS_PER_H),
            ("1d", NS_PER_D),
            ("1.5ms", 1_500_000),
            ("1500us", 1_500_000),
            ("3µs", 3_000),
            ("3μs", 3_000),
            ("7ns", 7),
            ("1.5ns", 2),
            ("0.4ns", 0),
            ("2e3ms", 2 * NS_PER_S),
            ("1E-3s", NS_PER_MS),
            ("16_384ns", 16_384),
            ("0s", 0),
            ("-0s", 0),
            ("+5s", 5 * NS_PER_S),
            (".5s", NS_PER_S / 2),
            ("120MS", 120 * NS_PER_MS),
            ("00:20:00", 20 * NS_PER_MIN),
            ("1.05:00:00", 29 * NS_PER_H),
            ("00:00:01.5", 1_500_000_000),
            ("00:00:00.0000001", 100),
            ("48:00:00", 48 * NS_PER_H),
            ("18446744073709551615ns", u64::MAX),
            ("18446744073.709551615s", u64::MAX),
            ("0.000000000000000000000000000000000000000000000001s", 0),
            ("1e-400s", 0),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_duration(s), Ok(want), "{s:?}");
            assert_eq!(
                parse_quantity(s, UnitKind::Duration).map(|v| v.round()),
                Ok(want as f64),
                "{s:?}"
            );
        }
        assert_eq!(parse_quantity("1.5ns", UnitKind::Duration), Ok(1.5));
        assert_eq!(parse_quantity("0.3s", UnitKind::Duration), Ok(3e8));
    }

    #[test]
    fn duration_errors() {
        let m = err_of(parse_duration("120"));
        assert_eq!(
            m,
            "expected a duration such as \"120ms\": \"120\" has no unit (accepted units: ns, us, ms, s, m|min, h, d, or hh:mm:ss); did you mean \"120ms\" or \"120s\"?"
        );
        has(
            &err_of(parse_duration("-5ms")),
            &["cannot be negative", "accepted units"],
        );
        has(
            &err_of(parse_duration("-00:20:00")),
            &["cannot be negative"],
        );
        has(&err_of(parse_duration("-5")), &["cannot be negative"]);
        has(
            &err_of(parse_duration("18446744073709551616ns")),
            &["too long"],
        );
        has(&err_of(parse_duration("1e30s")), &["too long"]);
        for d in [
            "exp(1e30s)",
            "uniform(1s, 1e30s)",
            "normal(mean=1s, sd=1e30s)",
            "1e30s",
        ] {
            let e = parse_dist(d, UnitKind::Duration).unwrap_err().0;
            assert!(e.contains("too long"), "{d}: {e}");
        }
        assert!(parse_dist("exp(100d)", UnitKind::Duration).is_ok());
        has(&err_of(parse_duration("1e99999999999999s")), &["too long"]);
        has(&err_of(parse_duration("300000d")), &["too long"]);
        has(
            &err_of(parse_duration("999999999999.00:00:00")),
            &["too long"],
        );
        has(
            &err_of(parse_duration("99999999999999999999999.00:00:00")),
            &["too long"],
        );
        has(&err_of(parse_duration("")), &["empty", "accepted units"]);
        has(&err_of(parse_duration("   ")), &["empty"]);
        has(
            &err_of(parse_duration("ms")),
            &["does not start with a number", "\"120ms\""],
        );
        has(
            &err_of(parse_duration("120sec")),
            &["unknown unit \"sec\"", "did you mean \"120s\"?"],
        );
        has(
            &err_of(parse_duration("5 hours")),
            &["did you mean \"5h\"?"],
        );
        has(
            &err_of(parse_duration("5mz")),
            &["unknown unit \"mz\"", "did you mean"],
        );
        has(
            &err_of(parse_duration("5xyzzy")),
            &["unknown unit", "accepted units"],
        );
        has(
            &err_of(parse_duration("5ms ms")),
            &["unknown unit \"ms ms\""],
        );
        has(&err_of(parse_duration("00:20")), &["hh:mm:ss", "00:20:00"]);
        has(&err_of(parse_duration("00:60:00")), &["below 60"]);
        has(&err_of(parse_duration("00:00:75")), &["below 60"]);
        has(&err_of(parse_duration("1.24:00:00")), &["below 24"]);
        has(&err_of(parse_duration("00:aa:00")), &["not a whole number"]);
        has(
            &err_of(parse_duration("00:00:00.1234567890")),
            &["1 to 9 digits"],
        );
        has(&err_of(parse_duration("00:00:00.")), &["1 to 9 digits"]);
        has(
            &err_of(parse_quantity("120", UnitKind::Duration)),
            &["no unit", "\"120s\""],
        );
    }

    #[test]
    fn sizes_parse() {
        let cases: &[(&str, u64)] = &[
            ("256MB", 256 << 20),
            ("256KB", 262_144),
            ("64KB", 64 << 10),
            ("1500B", 1500),
            ("1500 b", 1500),
            ("1.5KB", 1536),
            ("2kb", 2048),
            ("2KiB", 2048),
            ("3mib", 3 << 20),
            ("1GB", 1 << 30),
            ("1GiB", 1 << 30),
            ("2TB", 2 << 40),
            ("2TiB", 2 << 40),
            ("16_384B", 16_384),
            ("0B", 0),
            ("0.5KB", 512),
            ("16777215TB", 16_777_215 << 40),
            ("18446744073709551615B", u64::MAX),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_size(s), Ok(want), "{s:?}");
            assert_eq!(parse_quantity(s, UnitKind::Size), Ok(want as f64), "{s:?}");
        }
        assert_eq!(parse_quantity("1.5B", UnitKind::Size), Ok(1.5));
    }

    #[test]
    fn size_errors() {
        let m = err_of(parse_size("1024"));
        has(
            &m,
            &[
                "expected a size such as \"256KB\"",
                "\"1024\" has no unit",
                "KB",
                "KiB",
                "did you mean \"1024B\"",
            ],
        );
        has(
            &err_of(parse_size("0.1KB")),
            &["not a whole number of bytes"],
        );
        has(
            &err_of(parse_size("0.5B")),
            &["not a whole number of bytes"],
        );
        has(&err_of(parse_size("-1KB")), &["cannot be negative"]);
        has(&err_of(parse_size("16777216TB")), &["too large"]);
        has(&err_of(parse_size("1e40B")), &["too large"]);
        has(&err_of(parse_size("5 bytes")), &["did you mean \"5B\"?"]);
        has(&err_of(parse_size("4G")), &["did you mean \"4GB\"?"]);
        has(&err_of(parse_size("512k")), &["did you mean \"512KB\"?"]);
        has(
            &err_of(parse_size("5KBB")),
            &["unknown unit \"KBB\"", "did you mean \"5KB\""],
        );
        has(&err_of(parse_size("")), &["empty"]);
        has(&err_of(parse_quantity("7", UnitKind::Size)), &["no unit"]);
    }

    #[test]
    fn rates_parse() {
        let cases: &[(&str, f64)] = &[
            ("1000/s", 1000.0),
            (" 1000 / s ", 1000.0),
            ("2e3/s", 2000.0),
            ("5/ms", 5000.0),
            ("30/min", 0.5),
            ("30/m", 0.5),
            ("7200/h", 2.0),
            ("0/s", 0.0),
            ("0.25/s", 0.25),
            ("1_000/s", 1000.0),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_rate(s), Ok(want), "{s:?}");
        }
    }

    #[test]
    fn rate_errors() {
        has(
            &err_of(parse_rate("1000")),
            &[
                "expected a rate such as \"1000/s\"",
                "no unit",
                "did you mean \"1000/s\"?",
            ],
        );
        has(
            &err_of(parse_rate("1000s")),
            &["not a rate", "did you mean \"1000/s\"?"],
        );
        has(
            &err_of(parse_rate("10 per min")),
            &["did you mean \"10/min\"?"],
        );
        has(
            &err_of(parse_rate("10/sec")),
            &["unknown unit \"/sec\"", "did you mean \"10/s\"?"],
        );
        has(
            &err_of(parse_rate("10/fortnight")),
            &["unknown unit", "N/min"],
        );
        has(&err_of(parse_rate("-1/s")), &["cannot be negative"]);
        has(&err_of(parse_rate("1e400/s")), &["too large"]);
        // One event per nanosecond at most: the clock counts nanoseconds.
        assert_eq!(parse_rate("1000000000/s"), Ok(MAX_RATE_PER_S));
        assert_eq!(parse_rate("1000000/ms"), Ok(MAX_RATE_PER_S));
        has(
            &err_of(parse_rate("1e300/s")),
            &[
                "more than one event per nanosecond",
                "at most \"1000000000/s\"",
            ],
        );
        has(&err_of(parse_rate("2000000/ms")), &["per nanosecond"]);
        has(&err_of(parse_rate("/s")), &["does not start with a number"]);
        has(
            &err_of(parse_rate("inf/s")),
            &["does not start with a number"],
        );
        has(
            &err_of(parse_rate("NaN/s")),
            &["does not start with a number"],
        );
    }

    #[test]
    fn counts_parse() {
        assert_eq!(parse_quantity("4", UnitKind::Count), Ok(4.0));
        assert_eq!(parse_quantity(" 16_384 ", UnitKind::Count), Ok(16384.0));
        assert_eq!(parse_quantity("2.5e-1", UnitKind::Count), Ok(0.25));
        has(
            &err_of(parse_quantity("4ms", UnitKind::Count)),
            &["has a unit", "plain number", "did you mean \"4\"?"],
        );
        has(
            &err_of(parse_quantity("4x", UnitKind::Count)),
            &["unexpected \"x\""],
        );
        has(
            &err_of(parse_quantity("-4", UnitKind::Count)),
            &["cannot be negative"],
        );
        has(
            &err_of(parse_quantity("four", UnitKind::Count)),
            &["does not start with a number"],
        );
    }

    #[test]
    fn formats_are_canonical() {
        assert_eq!(format_duration(120 * NS_PER_MS), "120ms");
        assert_eq!(format_duration(240 * NS_PER_S), "4m");
        assert_eq!(format_duration(250 * NS_PER_S), "250s");
        assert_eq!(format_duration(20 * NS_PER_MIN), "20m");
        assert_eq!(format_duration(1_500_000), "1500us");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(NS_PER_H), "1h");
        assert_eq!(format_duration(2 * NS_PER_D), "2d");
        assert_eq!(format_duration(u64::MAX), "18446744073709551615ns");
        assert_eq!(format_size(256 << 20), "256MB");
        assert_eq!(format_size(64 << 10), "64KB");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_rate(1000.0), "1000/s");
        assert_eq!(format_rate(0.5), "0.5/s");
        assert_eq!(format_rate(1.0 / 60.0), "1/min");
        assert_eq!(format_rate(1.0 / 3600.0), "1/h");
        assert_eq!(format_rate(2.5), "2.5/s");
        assert_eq!(format_rate(0.0), "0/s");
        assert_eq!(format_rate(-0.0), "0/s");
        assert_eq!(format_quantity(10_000_000.0, UnitKind::Duration), "10ms");
        assert_eq!(format_quantity(1.5, UnitKind::Duration), "1.5ns");
        assert_eq!(format_quantity(0.25, UnitKind::Duration), "0.25ns");
        assert_eq!(format_quantity(1.5e9, UnitKind::Duration), "1500ms");
        assert_eq!(format_quantity(1e300, UnitKind::Count), "1e300");
        assert_eq!(format_quantity(1536.0, UnitKind::Size), "1536B");
        assert_eq!(format_quantity(4.0, UnitKind::Count), "4");
        assert_eq!(format_quantity(0.0, UnitKind::Size), "0B");
    }

    #[test]
    fn dists_parse() {
        let d = UnitKind::Duration;
        let ms = 1e6;
        let cases: Vec<(&str, Dist)> = vec![
            ("exp(10ms)", Dist::Exp { mean: 10.0 * ms }),
            (" exp( 10ms ) ", Dist::Exp { mean: 10.0 * ms }),
            ("exp(mean=10ms)", Dist::Exp { mean: 10.0 * ms }),
            ("Exp(10ms)", Dist::Exp { mean: 10.0 * ms }),
            ("exp(1.5ns)", Dist::Exp { mean: 1.5 }),
            ("const(5ms)", Dist::Const(5.0 * ms)),
            ("5ms", Dist::Const(5.0 * ms)),
            ("00:00:01", Dist::Const(1e9)),
            ("const(00:00:01)", Dist::Const(1e9)),
            (
                "uniform(1ms, 3ms)",
                Dist::Uniform {
                    lo: ms,
                    hi: 3.0 * ms,
                },
            ),
            (
                "uniform(hi=3ms, lo=1ms)",
                Dist::Uniform {
                    lo: ms,
                    hi: 3.0 * ms,
                },
            ),
            (
                "lognormal(mean=40ms, sd=30ms)",
                Dist::Lognormal {
                    mean: 40.0 * ms,
                    sd: 30.0 * ms,
                },
            ),
            (
                "lognormal(sd=30ms, mean=40ms)",
                Dist::Lognormal {
                    mean: 40.0 * ms,
                    sd: 30.0 * ms,
                },
            ),
            (
                "lognormal(40ms, 30ms)",
                Dist::Lognormal {
                    mean: 40.0 * ms,
                    sd: 30.0 * ms,
                },
            ),
            (
                "lognormal(40ms, sd=30ms)",
                Dist::Lognormal {
                    mean: 40.0 * ms,
                    sd: 30.0 * ms,
                },
            ),
            (
                "normal(mean=20ms, sd=5ms)",
                Dist::Normal {
                    mean: 20.0 * ms,
                    sd: 5.0 * ms,
                },
            ),
            (
                "erlang(k=4, mean=10ms)",
                Dist::Erlang {
                    k: 4,
                    mean: 10.0 * ms,
                },
            ),
            (
                "erlang(4, 10ms)",
                Dist::Erlang {
                    k: 4,
                    mean: 10.0 * ms,
                },
            ),
            (
                "gamma(shape=0.5, mean=10ms)",
                Dist::Gamma {
                    shape: 0.5,
                    mean: 10.0 * ms,
                },
            ),
            (
                "weibull(shape=1.5, mean=10ms)",
                Dist::Weibull {
                    shape: 1.5,
                    mean: 10.0 * ms,
                },
            ),
            (
                "pareto(shape=2.5, mean=10ms)",
                Dist::Pareto {
                    shape: 2.5,
                    mean: 10.0 * ms,
                },
            ),
            (
                "hyperexp(mean=10ms, scv=4)",
                Dist::HyperExp {
                    mean: 10.0 * ms,
                    scv: 4.0,
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(parse_dist(s, d), Ok(want), "{s:?}");
        }
        assert_eq!(
            parse_dist("exp(16KB)", UnitKind::Size),
            Ok(Dist::Exp { mean: 16384.0 })
        );
        assert_eq!(parse_dist("4", UnitKind::Count), Ok(Dist::Const(4.0)));
        assert_eq!(
            parse_dist("uniform(1, 4)", UnitKind::Count),
            Ok(Dist::Uniform { lo: 1.0, hi: 4.0 })
        );
    }

    #[test]
    fn dist_errors() {
        let d = UnitKind::Duration;
        let m = err_of(parse_dist("expo(10ms)", d));
        assert_eq!(
            m,
            "unknown distribution \"expo\"; accepted: const, exp, uniform, lognormal, normal, erlang, gamma, weibull, pareto, hyperexp; did you mean \"exp\"?"
        );
        has(
            &err_of(parse_dist("exponential(10ms)", d)),
            &["did you mean \"exp\"?"],
        );
        has(
            &err_of(parse_dist("unifrom(1ms, 2ms)", d)),
            &["did you mean \"uniform\"?"],
        );
        has(
            &err_of(parse_dist("zipf(1)", d)),
            &["unknown distribution \"zipf\"", "accepted: const"],
        );
        has(
            &err_of(parse_dist("expo", d)),
            &["neither a value nor a call", "did you mean \"exp\"?"],
        );
        has(&err_of(parse_dist("(10ms)", d)), &["no distribution name"]);
        has(
            &err_of(parse_dist("lognormal(mean=40ms, sigma=3ms)", d)),
            &["no argument \"sigma\"", "accepted: mean, sd"],
        );
        has(
            &err_of(parse_dist("lognormal(mean=40ms, sdev=3ms)", d)),
            &["did you mean \"sd\"?"],
        );
        has(
            &err_of(parse_dist("lognormal(mean=40ms)", d)),
            &[
                "lognormal needs mean and sd",
                "missing: sd",
                "lognormal(mean=10ms, sd=5ms)",
            ],
        );
        has(&err_of(parse_dist("erlang(mean=10ms)", d)), &["missing: k"]);
        has(&err_of(parse_dist("exp()", d)), &["missing: mean"]);
        has(&err_of(parse_dist("exp(10ms", d)), &["missing \")\""]);
        has(&err_of(parse_dist("exp(10ms) x", d)), &["unexpected \"x\""]);
        has(&err_of(parse_dist("exp((10ms))", d)), &["parentheses"]);
        has(
            &err_of(parse_dist("exp(10ms, 5ms)", d)),
            &["too many arguments"],
        );
        has(
            &err_of(parse_dist("uniform(1ms,)", d)),
            &["argument 2 is empty"],
        );
        has(
            &err_of(parse_dist("lognormal(mean=1ms, 2ms)", d)),
            &["positional argument"],
        );
        has(
            &err_of(parse_dist("lognormal(mean=1ms, mean=2ms)", d)),
            &["given twice"],
        );
        has(
            &err_of(parse_dist("exp(10)", d)),
            &["argument \"mean\" of exp", "no unit", "\"10ms\""],
        );
        has(
            &err_of(parse_dist("120", d)),
            &["no unit", "did you mean \"120ms\""],
        );
        has(
            &err_of(parse_dist("gamma(shape=1ms, mean=1ms)", d)),
            &["argument \"shape\"", "plain number"],
        );
        has(
            &err_of(parse_dist("erlang(k=2.5, mean=1ms)", d)),
            &["whole number"],
        );
        has(
            &err_of(parse_dist("erlang(k=0, mean=1ms)", d)),
            &["whole number"],
        );
        has(
            &err_of(parse_dist("uniform(3ms, 1ms)", d)),
            &["invalid distribution", "low <= high", "nanoseconds"],
        );
        has(
            &err_of(parse_dist("pareto(shape=1, mean=1ms)", d)),
            &["shape > 1"],
        );
        has(
            &err_of(parse_dist("hyperexp(mean=1ms, scv=0.5)", d)),
            &["scv >= 1"],
        );
        has(
            &err_of(parse_dist("lognormal(mean=0ms, sd=1ms)", d)),
            &["mean must be"],
        );
        has(&err_of(parse_dist("exp(-1ms)", d)), &["cannot be negative"]);
        has(
            &err_of(parse_dist("", d)),
            &["expected a distribution", "exp(10ms)"],
        );
        has(
            &err_of(parse_dist("exp(4ms)", UnitKind::Count)),
            &["has a unit"],
        );
        has(
            &err_of(parse_dist("exp(4)", UnitKind::Size)),
            &["no unit", "\"4B\""],
        );
    }

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Scenario {
        timeout: Duration,
        idle: Duration,
        rate: Rate,
        max_uri: Size,
        service: DurationDist,
        body: SizeDist,
        fanout: CountDist,
        fanout2: CountDist,
        fanout3: CountDist,
    }

    #[test]
    fn toml_round_trip() {
        let text = r#"
            timeout = "120s"
            idle = "00:20:00"
            rate = "1000/s"
            max_uri = "256KB"
            service = "lognormal(mean=40ms, sd=30ms)"
            body = "exp(16KB)"
            fanout = "uniform(1, 4)"
            fanout2 = 3
            fanout3 = 2.5
        "#;
        let s: Scenario = toml::from_str(text).unwrap();
        assert_eq!(s.timeout, Duration(120 * NS_PER_S));
        assert_eq!(s.idle, Duration(20 * NS_PER_MIN));
        assert_eq!(s.idle.as_secs_f64(), 1200.0);
        assert_eq!(s.rate, Rate(1000.0));
        assert_eq!(s.max_uri, Size(262_144));
        assert_eq!(
            s.service,
            DurationDist(Dist::Lognormal {
                mean: 40e6,
                sd: 30e6
            })
        );
        assert_eq!(s.body, SizeDist(Dist::Exp { mean: 16384.0 }));
        assert_eq!(s.fanout, CountDist(Dist::Uniform { lo: 1.0, hi: 4.0 }));
        assert_eq!(s.fanout2, CountDist(Dist::Const(3.0)));
        assert_eq!(s.fanout3, CountDist(Dist::Const(2.5)));
        let out = toml::to_string(&s).unwrap();
        assert!(out.contains("idle = \"20m\""), "{out}");
        assert!(
            out.contains("service = \"lognormal(mean=40ms, sd=30ms)\""),
            "{out}"
        );
        let back: Scenario = toml::from_str(&out).unwrap();
        assert_eq!(back, s);
        assert_eq!(Duration::default(), Duration::ZERO);
        assert_eq!(Size::default(), Size(0));
        assert!(Duration(1) < Duration(2) && Size(1) < Size(2) && Rate(1.0) < Rate(2.0));
        assert_eq!("5ms".parse::<Duration>(), Ok(Duration(5 * NS_PER_MS)));
        assert_eq!(Size(1536).to_string(), "1536B");
    }

    #[test]
    fn toml_integer_duration_is_a_no_unit_error() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            timeout: Duration,
        }
        let e = toml::from_str::<S>("timeout = 120\n")
            .unwrap_err()
            .to_string();
        has(
            &e,
            &[
                "\"120\" has no unit",
                "did you mean \"120ms\" or \"120s\"?",
                "timeout",
            ],
        );
        let e = toml::from_str::<S>("timeout = 1.5\n")
            .unwrap_err()
            .to_string();
        has(&e, &["\"1.5\" has no unit", "\"1.5s\""]);
        let e = toml::from_str::<S>("timeout = true\n")
            .unwrap_err()
            .to_string();
        has(&e, &["a duration string such as"]);
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Z {
            size: Size,
            rate: Rate,
            service: DurationDist,
        }
        let e = toml::from_str::<Z>("size = 4096\nrate = \"1/s\"\nservice = \"1ms\"")
            .unwrap_err()
            .to_string();
        has(&e, &["\"4096\" has no unit"]);
        let e = toml::from_str::<Z>("size = \"1B\"\nrate = 5\nservice = \"1ms\"")
            .unwrap_err()
            .to_string();
        has(&e, &["did you mean \"5/s\"?"]);
        let e = toml::from_str::<Z>("size = \"1B\"\nrate = \"5/s\"\nservice = 3")
            .unwrap_err()
            .to_string();
        has(&e, &["\"3\" has no unit"]);
    }

    // ---- property tests

    fn any_dur_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..1_000_000, 0usize..7).prop_map(|(n, u)| n as f64 * DURATION_UNITS[u].1 as f64),
            (0u64..1000, 0usize..7).prop_map(|(n, u)| n as f64 * 0.25 * DURATION_UNITS[u].1 as f64),
            any::<u64>().prop_map(|n| n as f64),
            (1e-300f64..1e300),
            proptest::num::f64::POSITIVE | proptest::num::f64::ZERO,
        ]
    }

    fn any_size_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..1_000_000, 0usize..5).prop_map(|(n, u)| n as f64 * SIZE_UNITS[u].1 as f64),
            (0u64..1000, 0usize..5).prop_map(|(n, u)| n as f64 * 0.5 * SIZE_UNITS[u].1 as f64),
            proptest::num::f64::POSITIVE | proptest::num::f64::ZERO,
        ]
    }

    fn any_plain() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u32..100).prop_map(f64::from),
            (0u32..100).prop_map(|n| f64::from(n) / 8.0),
            proptest::num::f64::POSITIVE | proptest::num::f64::ZERO,
        ]
    }

    fn any_dist(q: BoxedStrategy<f64>) -> impl Strategy<Value = Dist> {
        let p = any_plain().boxed();
        prop_oneof![
            q.clone().prop_map(Dist::Const),
            q.clone().prop_map(|mean| Dist::Exp { mean }),
            (q.clone(), q.clone()).prop_map(|(a, b)| Dist::Uniform {
                lo: a.min(b),
                hi: a.max(b)
            }),
            (q.clone(), q.clone()).prop_map(|(mean, sd)| Dist::Lognormal { mean, sd }),
            (q.clone(), q.clone()).prop_map(|(mean, sd)| Dist::Normal { mean, sd }),
            (1u32..=u32::MAX, q.clone()).prop_map(|(k, mean)| Dist::Erlang { k, mean }),
            (p.clone(), q.clone()).prop_map(|(shape, mean)| Dist::Gamma { shape, mean }),
            (p.clone(), q.clone()).prop_map(|(shape, mean)| Dist::Weibull { shape, mean }),
            (p.clone(), q.clone()).prop_map(|(shape, mean)| Dist::Pareto {
                shape: shape + 1.5,
                mean
            }),
            (q.clone(), p.clone()).prop_map(|(mean, scv)| Dist::HyperExp {
                mean,
                scv: scv + 1.0
            }),
        ]
        .prop_filter("valid", |d| d.validate().is_ok())
    }

    const VALID: &[&str] = &[
        "120ms",
        " 1.5 s ",
        "00:20:00",
        "1.05:00:00.125",
        "16_384KB",
        "1000/s",
        "2e3/min",
        "exp(10ms)",
        "lognormal(mean=40ms, sd=30ms)",
        "uniform(1ms, 3ms)",
        "erlang(k=4, mean=1ms)",
        "hyperexp(mean=10ms, scv=4)",
        "gamma(shape=0.5, mean=10KB)",
        "4",
        "1e-7µs",
    ];

    fn parse_all(s: &str) {
        let _ = parse_duration(s);
        let _ = parse_rate(s);
        let _ = parse_size(s);
        for k in [UnitKind::Duration, UnitKind::Size, UnitKind::Count] {
            let _ = parse_quantity(s, k);
            if let Ok(d) = parse_dist(s, k) {
                assert_eq!(parse_dist(&format_dist(&d, k), k), Ok(d));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn duration_round_trip(ns in any::<u64>(), small in 0u64..100_000, u in 0usize..7) {
            for v in [ns, small * DURATION_UNITS[u].1] {
                let s = format_duration(v);
                prop_assert_eq!(parse_duration(&s), Ok(v), "{}", s);
                prop_assert_eq!(s.parse::<Duration>(), Ok(Duration(v)));
            }
        }

        #[test]
        fn size_round_trip(b in any::<u64>(), small in 0u64..100_000, u in 0usize..5) {
            for v in [b, small.checked_mul(SIZE_UNITS[u].1).unwrap()] {
                let s = format_size(v);
                prop_assert_eq!(parse_size(&s), Ok(v), "{}", s);
            }
        }

        #[test]
        fn rate_round_trip(r in proptest::num::f64::POSITIVE | proptest::num::f64::ZERO, n in 0u32..10_000) {
            for v in [r, f64::from(n) / 60.0, f64::from(n) / 3600.0, f64::from(n)] {
                let s = format_rate(v);
                if v > MAX_RATE_PER_S {
                    prop_assert!(parse_rate(&s).is_err(), "{}", s);
                } else {
                    prop_assert_eq!(parse_rate(&s), Ok(v), "{}", s);
                }
            }
        }

        #[test]
        fn quantity_round_trip(d in any_dur_f64(), z in any_size_f64(), c in any_plain()) {
            for (v, k) in [(d, UnitKind::Duration), (z, UnitKind::Size), (c, UnitKind::Count)] {
                let s = format_quantity(v, k);
                prop_assert_eq!(parse_quantity(&s, k), Ok(v), "{}", s);
            }
        }

        #[test]
        fn duration_dist_round_trip(d in any_dist(any_dur_f64().boxed())) {
            let s = format_dist(&d, UnitKind::Duration);
            let spread = match d {
                Dist::Uniform { hi, .. } => hi,
                Dist::Lognormal { sd, .. } | Dist::Normal { sd, .. } => sd,
                _ => 0.0,
            };
            if d.mean().max(spread) > u64::MAX as f64 {
                // Times beyond the clock's range are refused, like such a duration.
                prop_assert!(parse_dist(&s, UnitKind::Duration).is_err(), "{}", s);
            } else {
                prop_assert_eq!(parse_dist(&s, UnitKind::Duration), Ok(d), "{}", s);
            }
        }

        #[test]
        fn size_dist_round_trip(d in any_dist(any_size_f64().boxed())) {
            let s = format_dist(&d, UnitKind::Size);
            prop_assert_eq!(parse_dist(&s, UnitKind::Size), Ok(d), "{}", s);
        }

        #[test]
        fn count_dist_round_trip(d in any_dist(any_plain().boxed())) {
            let s = format_dist(&d, UnitKind::Count);
            prop_assert_eq!(parse_dist(&s, UnitKind::Count), Ok(d), "{}", s);
        }

        #[test]
        fn random_strings_never_panic(s in any::<String>(), t in "[0-9a-zA-Zµ_.:eE+ ,=()/-]{0,24}") {
            parse_all(&s);
            parse_all(&t);
        }

        #[test]
        fn mutated_strings_never_panic(
            i in 0usize..VALID.len(),
            ops in proptest::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<char>()), 1..6),
        ) {
            let mut chars: Vec<char> = VALID[i].chars().collect();
            for (op, at, c) in ops {
                let at = at.index(chars.len() + 1);
                match op {
                    0 if at < chars.len() => { chars.remove(at); }
                    1 => chars.insert(at, c),
                    _ if at < chars.len() => { let c = chars[at]; chars.insert(at, c); }
                    _ => chars.insert(at, c),
                }
            }
            let s: String = chars.into_iter().collect();
            parse_all(&s);
        }
    }
}
