//! Loading a scenario: TOML text + `--set` overrides → a validated [`Scenario`], or
//! every problem found, each naming file, line, column and key.
//!
//! The loader recovers from errors so that one run of `w3sim check` reports as many
//! problems as it can: syntax errors come from the TOML parser's recovering mode; a
//! type or unknown-key error is recorded, the offending key removed, and the rest
//! deserialised again; semantic checks ([`Scenario::validate`]) run on what remains
//! when only unknown keys were dropped (a value that could not be read would have its
//! default stand in for it).

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Scenario;

/// One problem in a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The file (or `--set`) the problem is in.
    pub file: String,
    /// 1-based line and column; 0 when the problem has no position (e.g. `--set`).
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `http_sys.queue_length` or `classes[0].service`.
    pub key: String,
    pub message: String,
    /// A suggestion (nearest valid key, accepted values).
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if self.key.is_empty() {
            write!(f, "error: {}", self.message)?;
        } else {
            write!(f, "error in `{}`: {}", self.key, self.message)?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found while loading a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    fn single(file: &str, message: String) -> Self {
        Self {
            diagnostics: vec![Diagnostic {
                file: file.into(),
                line: 0,
                column: 0,
                key: String::new(),
                message,
                help: None,
            }],
        }
    }
}

/// Loads a scenario file with `--set key=value` overrides.
pub fn load_file(path: &Path, overrides: &[String]) -> Result<Scenario, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read(path)
        .map_err(|e| LoadError::single(&name, format!("cannot read the scenario file: {e}")))?;
    let text = String::from_utf8(text).map_err(|e| {
        LoadError::single(
            &name,
            format!(
                "the file is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    load_str(&name, &text, overrides)
}

/// A key path segment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The key path of a deserialisation error as segments.
pub fn error_path(p: &serde_path_to_error::Path) -> Vec<Seg> {
    p.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

/// Formats a path as `a.b[0].c`.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// An override's key and value, split at its first `=` (`--set`, a farm group's `set`, a
/// sweep's overrides). `None` when it is not `key=value`: no `=`, or one only inside a
/// value written after its key without the `=` (`gc.cache_reload { at = "60s" }`, whose
/// "key" would be `gc.cache_reload { at`).
pub(crate) fn split_override(o: &str) -> Option<(&str, &str)> {
    let (k, v) = o.split_once('=')?;
    let k_trim = k.trim();
    let value_in_key = k_trim.contains(char::is_whitespace)
        && !k_trim.chars().all(|c| key_char(c) || c.is_whitespace());
    (!value_in_key).then_some((k, v))
}

/// The entry `o` with its `=` put back, when it reads as a key and a value with the `=`
/// left out or written as `:` (`http_sys.queue_length 5000` → `http_sys.queue_length=5000`):
/// the suggestion for an override that [`split_override`] refuses.
pub(crate) fn key_value_fix(o: &str) -> Option<String> {
    let o = o.trim();
    let i = o.find(|c: char| c.is_whitespace() || c == ':')?;
    let (k, v) = (
        &o[..i],
        o[i..].trim_start_matches(|c: char| c.is_whitespace() || c == ':'),
    );
    (k.chars().all(key_char) && parse_path(k).is_ok() && !v.is_empty()).then(|| format!("{k}={v}"))
}

/// A character of a key path: a bare TOML key's, a dot or an index's bracket.
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']')
}

/// Parses `a.b[0].c` or `a.b.0.c` into segments.
pub fn parse_path(s: &str) -> Result<Vec<Seg>, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Err("the key is empty".into());
    }
    for part in s.trim().split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            if name.bytes().all(|b| b.is_ascii_digit()) {
                out.push(Seg::Index(
                    name.parse().map_err(|_| format!("bad index `{name}`"))?,
                ));
            } else {
                out.push(Seg::Key(name.to_string()));
            }
        } else if rest.is_empty() {
            return Err(format!("empty segment in key `{s}`"));
        }
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("missing `]` in key `{s}`"))?;
            let idx: usize = r[..end]
                .trim()
                .parse()
                .map_err(|_| format!("bad index `{}` in key `{s}`", &r[..end]))?;
            out.push(Seg::Index(idx));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("unexpected `{rest}` in key `{s}`"));
        }
    }
    Ok(out)
}

pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Extracts the backticked names of serde's "expected one of `a`, `b`" lists.
fn expected_names(message: &str) -> Vec<String> {
    let Some(i) = message.find("expected") else {
        return Vec::new();
    };
    message[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The nearest candidate to `word`, if any is close enough to be a likely misspelling.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(w.len()) / 3).max(2))
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// Keys that took the name of the Windows setting they model: (old key, new key, how
/// to write the old value), so a scenario written for an earlier w3sim gets a direct fix.
const RENAMED: &[(&str, &str, &str)] = &[
    (
        "flavor",
        "gc_server",
        "`gc_server = true` for \"server\", false for \"workstation\"",
    ),
    ("background", "gc_concurrent", "same value"),
    ("gen0_budget", "gc_gen0_size", "same value"),
    ("thread_idle_timeout", "thread_timeout", "same value"),
    (
        "starvation_detection",
        "disable_starvation_detection",
        "inverted: true becomes false",
    ),
    (
        "hill_climbing",
        "hill_climbing_disable",
        "inverted: true becomes false",
    ),
    (
        "reuse_time_wait_ports",
        "so_reuse_unicastport",
        "same value",
    ),
    ("enabled", "uri_enable_cache", "same value"),
    (
        "uri_max_cache_bytes",
        "uri_max_cache_megabyte_count",
        "a whole number of megabytes",
    ),
    ("rss_queues", "number_of_receive_queues", "same value"),
];

/// What a key renamed after the Windows setting it models became, and how to write its
/// old value: `rss_queues` → (`number_of_receive_queues`, "same value").
pub fn renamed(key: &str) -> Option<(&'static str, &'static str)> {
    RENAMED
        .iter()
        .find(|(old, _, _)| *old == key)
        .map(|&(_, new, how)| (new, how))
}

/// Rewrites serde's message into ours and proposes help.
pub(crate) fn explain(message: &str) -> (String, Option<String>) {
    let first = message.lines().next().unwrap_or("").trim().to_string();
    if let Some(rest) = first.strip_prefix("unknown field `") {
        let word = rest.split('`').next().unwrap_or("");
        let names = expected_names(&first);
        let mut help = String::new();
        if let Some((_, new, how)) = RENAMED
            .iter()
            .find(|(old, new, _)| *old == word && names.iter().any(|n| n == new))
        {
            help.push_str(&format!(
                "`{word}` is now `{new}`, the name of the Windows setting it models ({how}); "
            ));
        } else if let Some(n) = nearest(word, names.iter().map(String::as_str)) {
            help.push_str(&format!("did you mean `{n}`? "));
        }
        if names.is_empty() {
            help.push_str("this table takes no keys");
        } else {
            help.push_str(&format!("accepted keys: {}", names.join(", ")));
        }
        return (format!("unknown key `{word}`"), Some(help));
    }
    if let Some(rest) = first.strip_prefix("unknown variant `") {
        let word = rest.split('`').next().unwrap_or("");
        let names = expected_names(&first);
        let mut help = String::new();
        if let Some(n) = nearest(word, names.iter().map(String::as_str)) {
            help.push_str(&format!("did you mean \"{n}\"? "));
        }
        help.push_str(&format!("accepted values: {}", names.join(", ")));
        return (format!("unknown value \"{word}\""), Some(help));
    }
    if let Some(rest) = first.strip_prefix("missing field `") {
        let word = rest.split('`').next().unwrap_or("");
        return (format!("missing key `{word}`"), None);
    }
    if let Some(i) = first.find("; did you mean") {
        let (m, h) = first.split_at(i);
        return (m.to_string(), Some(h[2..].trim().to_string()));
    }
    (first, None)
}

/// What a whole-number error adds for a value written with a decimal point or exponent
/// (a sweep's range axis recognises it to blame its `from` or `step`).
pub(crate) const NOT_WHOLE: &str = "a whole number is written without a decimal point or exponent";

/// serde's "invalid value: integer `-5`, expected u32" in words, with the range the
/// setting takes and what was written: its documented `unit` when that states the range
/// (`integer 10–65535`, `count (0–100)`: the type's own range would be a second, wrong
/// one), else the range of the type.
fn number_message(first: &str, unit: Option<&str>) -> Option<String> {
    let (head, ty) = first.rsplit_once(", expected ")?;
    let range = match ty {
        "u8" => "0 to 255",
        "u16" => "0 to 65535",
        "u32" => "0 to 4294967295",
        "u64" | "usize" => "0 to 9223372036854775807",
        "i64" => "-9223372036854775808 to 9223372036854775807",
        _ => return None,
    };
    let got = head
        .strip_prefix("invalid value: ")
        .or_else(|| head.strip_prefix("invalid type: "))?;
    let written = got.split('`').nth(1).unwrap_or(got);
    let how = if got.starts_with("floating point") {
        format!(
            ", got {written}: {NOT_WHOLE}{}",
            written
                .parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && v.abs() < 1e15)
                .map_or_else(String::new, |v| format!(" ({v})"))
        )
    } else if got.starts_with("integer") {
        format!(", got {written}")
    } else {
        format!(", got {got}")
    };
    let ranged = |u: &str| ["–", "≥", ">=", "at most"].iter().any(|r| u.contains(r));
    Some(match unit {
        Some(u) if ranged(u) => format!("expected a whole number: {u}{how}"),
        _ => format!("expected a whole number from {range}{how}"),
    })
}

/// The unit or accepted values `show-defaults` gives for the setting at `path`.
fn setting_unit(path: &[Seg]) -> Option<&'static str> {
    // `classes[0].weight` is documented as `classes[].weight`.
    let mut pattern = String::new();
    let mut in_index = false;
    for c in path_string(path).chars() {
        match c {
            '[' => in_index = true,
            ']' => {
                in_index = false;
                pattern.push_str("[]");
            }
            _ if in_index => {}
            _ => pattern.push(c),
        }
    }
    super::settings::SETTINGS
        .iter()
        .find(|d| d.path == pattern)
        .map(|d| d.unit)
}

/// Finds the span of the value at `path` in the parsed document.
pub(crate) fn locate(table: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let mut span = table.span();
    let mut cur: Option<&DeValue<'_>> = None;
    let mut tbl: &DeTable<'_> = table.get_ref();
    for seg in path {
        let next = match (seg, cur) {
            (Seg::Key(k), None) => tbl.get(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else {
            return Some(span);
        };
        span = next.span();
        cur = Some(next.get_ref());
        if let DeValue::Table(t) = next.get_ref() {
            tbl = t;
        }
    }
    Some(span)
}

/// Removes the value at `path` so that deserialisation can go on past an error.
/// Returns false if nothing could be removed.
pub(crate) fn remove_at(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    match path {
        [] => false,
        [Seg::Key(k)] => table.remove(k.as_str()).is_some(),
        [Seg::Key(k), rest @ ..] => match table.get_mut(k.as_str()).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => remove_at(t, rest),
            Some(DeValue::Array(a)) => remove_in_array(a, rest),
            _ => table.remove(k.as_str()).is_some(),
        },
        [Seg::Index(_), ..] => false,
    }
}

fn remove_in_array(a: &mut toml::de::DeArray<'_>, path: &[Seg]) -> bool {
    match path {
        [Seg::Index(i), rest @ ..] => match a.get_mut(*i).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) if !rest.is_empty() => remove_at(t, rest),
            Some(DeValue::Array(inner)) if !rest.is_empty() => remove_in_array(inner, rest),
            Some(v) => {
                // Cannot delete from the middle of an array without renumbering: blank it.
                *v = DeValue::Table(DeTable::new());
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Keys that hold lists of tables, for suggestions when an override indexes a misspelt one.
const LIST_KEYS: [&str; 8] = [
    "classes", "backends", "valves", "schedule", "bursts", "steps", "noise", "servers",
];

/// Inserts an override value at `path`, creating tables as needed.
fn insert_at<'i>(
    table: &mut DeTable<'i>,
    path: &[Seg],
    value: Spanned<DeValue<'i>>,
) -> Result<(), String> {
    match path {
        [] => Err("the key is empty".into()),
        [Seg::Key(k)] => {
            table.insert(Spanned::new(0..0, k.clone().into()), value);
            Ok(())
        }
        [Seg::Key(k), rest @ ..] => {
            if !table.contains_key(k.as_str()) {
                if matches!(rest.first(), Some(Seg::Index(_))) {
                    let keys: Vec<&str> = table.keys().map(|k| k.get_ref().as_ref()).collect();
                    // Only a different name is a suggestion: `servers` for `servers` is not.
                    let hint = nearest(k, keys.iter().copied().chain(LIST_KEYS))
                        .filter(|n| *n != k.as_str())
                        .map_or_else(String::new, |n| format!("; did you mean `{n}`?"));
                    return Err(format!("`{k}` has no elements to index{hint}"));
                }
                table.insert(
                    Spanned::new(0..0, k.clone().into()),
                    Spanned::new(0..0, DeValue::Table(DeTable::new())),
                );
            }
            match table.get_mut(k.as_str()).map(|v| v.get_mut()) {
                Some(DeValue::Table(t)) => insert_at(t, rest, value),
                Some(DeValue::Array(a)) => insert_in_array(a, k, rest, value),
                _ => Err(format!("`{k}` is a value, not a table")),
            }
        }
        [Seg::Index(i), ..] => Err(format!("index [{i}] must follow a key")),
    }
}

fn insert_in_array<'i>(
    a: &mut toml::de::DeArray<'i>,
    name: &str,
    path: &[Seg],
    value: Spanned<DeValue<'i>>,
) -> Result<(), String> {
    let len = a.len();
    match path {
        // One past the end appends a whole element: --set 'classes[2]={ name = "x", … }'.
        [Seg::Index(i)] if *i == len => {
            a.push(value);
            Ok(())
        }
        [Seg::Index(i)] => match a.get_mut(*i) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(format!(
                "`{name}` has {len} element(s); index {i} is out of range (index {len} appends a whole element)"
            )),
        },
        [Seg::Index(i), rest @ ..] => match a.get_mut(*i).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => insert_at(t, rest, value),
            Some(_) => Err(format!("`{name}[{i}]` is not a table")),
            None => Err(format!(
                "`{name}` has {len} element(s); index {i} is out of range"
            )),
        },
        _ => Err(format!(
            "`{name}` is a list: give an index, e.g. `{name}[0]`"
        )),
    }
}

/// Deserialises `T` from `table`, reporting every error rather than the first: each
/// bad key goes to `report` (its path, its span in the text if known, the message and a
/// help line), is dropped, and the rest is read again. A required key dropped this way
/// is not reported a second time as missing. `None` if the document never read.
pub(crate) fn deserialize_all<T: for<'de> Deserialize<'de>>(
    table: &mut Spanned<DeTable<'_>>,
    mut report: impl FnMut(&[Seg], Option<Range<usize>>, String, Option<String>),
) -> Option<T> {
    let mut removed: BTreeSet<Vec<Seg>> = BTreeSet::new();
    for _ in 0..64 {
        let de = toml::Deserializer::from(table.clone());
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => return Some(v),
            Err(e) => {
                let path = error_path(e.path());
                let inner = e.into_inner();
                let (message, mut help) = explain(inner.message());
                let unit = setting_unit(&path);
                let message = number_message(&message, unit).unwrap_or(message);
                if help.is_none()
                    && (message.starts_with("expected")
                        || message.starts_with("invalid type")
                        || message.starts_with("wanted"))
                    && !unit.is_some_and(|u| message.contains(u))
                {
                    help = unit.map(|u| format!("accepted: {u}"));
                }
                // What blanking a bad key or list element makes fail again is no news.
                let echo = removed.contains(&path)
                    || message.starts_with("missing key")
                        && removed
                            .iter()
                            .any(|r| r.starts_with(&path) || path.starts_with(r));
                if !echo {
                    let span = inner.span().or_else(|| locate(table, &path));
                    report(&path, span, message, help);
                }
                // Drop what failed to go on; when that changes nothing (a list element
                // blanked that still lacks a key), drop its parents in turn, so that later
                // problems elsewhere are still reported in this pass.
                let mut p = path.clone();
                while !(removed.insert(p.clone()) && remove_at(table.get_mut(), &p)) {
                    if p.pop().is_none() || p.is_empty() {
                        return None;
                    }
                }
            }
        }
    }
    None
}

/// Loads scenario text. `file` names it in diagnostics; `overrides` are `key=value`
/// strings (`--set`), applied on top of the file with the same key paths as sweeps.
pub fn load_str(file: &str, text: &str, overrides: &[String]) -> Result<Scenario, LoadError> {
    load_str_in(file, text, overrides, Path::new("."))
}

/// [`load_str`] with the directory that paths given by `overrides` are relative to (a
/// sweep file's, for its `[set]` and axes; the working directory for `--set`). A path
/// written in the file is relative to the file.
pub fn load_str_in(
    file: &str,
    text: &str,
    overrides: &[String],
    override_dir: &Path,
) -> Result<Scenario, LoadError> {
    load_impl(file, text, overrides, override_dir, true)
}

/// [`load_str`] for text w3sim wrote itself (a farm's scenario serialised for its
/// servers' `set`, a benchmark's template): values that the scenario ignores are not
/// refused there, since no one wrote them (overrides are still checked).
pub(crate) fn load_generated(
    file: &str,
    text: &str,
    overrides: &[String],
) -> Result<Scenario, LoadError> {
    load_impl(file, text, overrides, Path::new("."), false)
}

fn load_impl(
    file: &str,
    text: &str,
    overrides: &[String],
    override_dir: &Path,
    check_written: bool,
) -> Result<Scenario, LoadError> {
    let mut diags = Vec::new();
    let (mut table, syntax) = DeTable::parse_recoverable(text);
    for e in syntax {
        let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        diags.push(Diagnostic {
            file: file.into(),
            line,
            column,
            key: String::new(),
            message: format!("TOML syntax: {}", e.message().trim()),
            help: None,
        });
    }

    // Apply overrides; remember which paths they set.
    let mut overridden: Vec<(Vec<Seg>, String)> = Vec::new();
    for o in overrides {
        let origin = format!("--set {o}");
        let Some((k, v)) = split_override(o) else {
            diags.push(Diagnostic {
                file: origin,
                line: 0,
                column: 0,
                key: String::new(),
                message: "expected key=value".into(),
                help: Some(match key_value_fix(o) {
                    Some(f) => format!("did you mean --set '{f}'?"),
                    None => "e.g. --set http_sys.queue_length=5000 or --set load.rate=400/s".into(),
                }),
            });
            continue;
        };
        let path = match parse_path(k) {
            Ok(p) => p,
            Err(m) => {
                diags.push(Diagnostic {
                    file: origin,
                    line: 0,
                    column: 0,
                    key: k.trim().into(),
                    message: m,
                    help: None,
                });
                continue;
            }
        };
        let v = v.trim();
        let value = match DeValue::parse(v) {
            Ok(val) => val,
            // Anything that is not a TOML literal is taken as a string: --set load.rate=400/s
            Err(_) => Spanned::new(0..0, DeValue::String(v.into())),
        };
        fill_default_lists(table.get_mut(), &path);
        if let Err(m) = insert_at(table.get_mut(), &path, value) {
            diags.push(Diagnostic {
                file: origin,
                line: 0,
                column: 0,
                key: path_string(&path),
                message: m,
                help: None,
            });
            continue;
        }
        overridden.push((path, origin));
    }

    let origin_of = |path: &[Seg]| -> Option<&str> {
        overridden
            .iter()
            .rev()
            .find(|(p, _)| path.starts_with(p))
            .map(|(_, o)| o.as_str())
    };

    // An error at a key no line of the file holds (its span is empty: an override put it
    // there, e.g. the unknown table `http_sy` of `--set http_sy.queue_length=5`) belongs to
    // the override below it.
    let created_by = |path: &[Seg], span: &Option<Range<usize>>| -> Option<&str> {
        if span.as_ref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        overridden
            .iter()
            .rev()
            .find(|(p, _)| p.starts_with(path))
            .map(|(_, o)| o.as_str())
    };
    let syntax_errors = !diags.is_empty();
    // A broken table header makes the keys below it land elsewhere: unknown keys after
    // the first syntax error are its echoes, not the user's.
    let first_syntax_line = diags
        .iter()
        .filter(|d| d.file == file && d.line > 0)
        .map(|d| d.line)
        .min()
        .unwrap_or(usize::MAX);
    // Whether a key that failed held a value the scenario now lacks (a type error: a
    // default stands in for it), rather than a key w3sim does not know (which changes
    // nothing once dropped).
    let mut substituted = false;
    let scenario: Option<Scenario> = deserialize_all(&mut table, |path, span, message, help| {
        substituted |= !message.starts_with("unknown key");
        let (file_name, line, column) = match origin_of(path).or_else(|| created_by(path, &span)) {
            Some(o) => (o.to_string(), 0, 0),
            None => {
                let (l, c) = span.map_or((0, 0), |s| line_col(text, s.start));
                (file.to_string(), l, c)
            }
        };
        if message.starts_with("unknown key") && file_name == file && line > first_syntax_line {
            return;
        }
        diags.push(Diagnostic {
            file: file_name,
            line,
            column,
            key: path_string(path),
            message,
            help,
        });
    });

    let Some(mut scenario) = scenario else {
        if diags.is_empty() {
            diags.push(Diagnostic {
                file: file.into(),
                line: 0,
                column: 0,
                key: String::new(),
                message: "the scenario could not be read".into(),
                help: None,
            });
        }
        return Err(LoadError {
            diagnostics: sorted(diags),
        });
    };
    // Where a problem found after parsing points: the override that set its key (or
    // `set_by`), else the key's line and column in the file.
    let place = |path: &[Seg], set_by: Option<&str>| -> (String, usize, usize) {
        match set_by.or_else(|| origin_of(path)) {
            Some(o) => (o.to_string(), 0, 0),
            None => {
                let (l, c) = locate(&table, path).map_or((0, 0), |s| line_col(text, s.start));
                (file.to_string(), l, c)
            }
        }
    };
    // Semantic checks (ranges, relations between keys) run on what the user wrote: after
    // unknown keys, which change no value, but not after a value that could not be read
    // (its default would stand in, and a relation with it could look wrong) nor after a
    // syntax error (the recovered text may miss any key).
    let partial = !diags.is_empty();
    if !(syntax_errors || substituted) {
        for inv in scenario.validate() {
            let path = parse_path(&inv.path).unwrap_or_default();
            let (file_name, line, column) = place(&path, None);
            diags.push(Diagnostic {
                file: file_name,
                line,
                column,
                key: inv.path.clone(),
                message: inv.message,
                help: None,
            });
        }
    }
    if partial {
        return Err(LoadError {
            diagnostics: sorted(diags),
        });
    }
    // An override the scenario would silently ignore (a rate under a schedule, users in
    // an open loop) is refused: the run would not be what was asked for.
    let mut seen: Vec<&[Seg]> = Vec::new();
    for (path, origin) in overridden.iter().rev() {
        if seen.contains(&path.as_slice()) {
            continue;
        }
        seen.push(path);
        if let Some((message, help)) = ignored_override(&scenario, path) {
            diags.push(Diagnostic {
                file: origin.clone(),
                line: 0,
                column: 0,
                key: path_string(path),
                message,
                help: Some(help),
            });
        }
    }
    // The same for what the file itself writes (users in an open loop, a rate in a
    // closed one, balancer settings without a farm) with a value other than the default
    // (a run's own `scenario.toml` writes every key), unless an override replaced it or
    // made it moot (`--set load.mode=closed` on a file with a rate).
    let mut written = Vec::new();
    if check_written {
        written_paths(table.get_ref(), &mut Vec::new(), &mut written);
    }
    let (resolved, defaults) = (
        toml::Value::try_from(&scenario).ok(),
        toml::Value::try_from(Scenario::default()).ok(),
    );
    for path in written {
        if origin_of(&path).is_some() {
            continue;
        }
        // A rate next to a schedule is the documented fallback (`--set 'load.schedule=[]'`
        // runs at it), not a contradiction.
        let keys = key_shape(&path);
        let layered = match keys.as_slice() {
            ["load", "rate"] => {
                !scenario.load.schedule.is_empty() || scenario.load.replay.is_some()
            }
            ["classes", "[]", "rate"] => true,
            // net8 keeps what a file gives the IOCP pool as the runtime keeps the IO values
            // of SetMinThreads/SetMaxThreads (`_legacy_min/maxIOCompletionThreads`):
            // accepted, without effect (an override of them is still refused).
            ["thread_pool", k] => super::IOCP_KEYS.contains(k),
            _ => false,
        };
        if layered {
            continue;
        }
        let Some((message, help)) = ignored_override(&scenario, &path) else {
            continue;
        };
        let cause = ignored_because(&path);
        if overridden
            .iter()
            .any(|(p, _)| cause.iter().any(|c| p.starts_with(c) || c.starts_with(p)))
        {
            continue;
        }
        let default = defaults.as_ref().and_then(|v| value_at(v, &path));
        if default.is_some() && default == resolved.as_ref().and_then(|v| value_at(v, &path)) {
            continue;
        }
        let (l, c) = locate(&table, &path).map_or((0, 0), |sp| line_col(text, sp.start));
        diags.push(Diagnostic {
            file: file.to_string(),
            line: l,
            column: c,
            key: path_string(&path),
            message,
            help: Some(help),
        });
    }
    // `load.replay` becomes the schedule now, so that the run, its servers and the
    // `scenario.toml` written with its outputs all hold the rates themselves.
    if diags.is_empty()
        && let Some(r) = scenario.load.replay.take()
    {
        let at = [Seg::Key("load".into()), Seg::Key("replay".into())];
        // The override that last touched the replay (where an error is reported), and
        // whether one gave its file (what the path is relative to).
        let set_by = overridden
            .iter()
            .rev()
            .find(|(p, _)| p.starts_with(&at) || at.starts_with(p))
            .map(|(_, o)| o.clone());
        let file_set = overridden.iter().any(|(p, _)| {
            at.starts_with(p) || p.as_slice() == [&at[..], &[Seg::Key("file".into())]].concat()
        });
        let on_disk = Path::new(file);
        let base = match on_disk.parent() {
            Some(dir) if !file_set && on_disk.is_file() => dir.to_path_buf(),
            _ => override_dir.to_path_buf(),
        };
        match super::replay::schedule(&r, &base, scenario.duration) {
            Ok((points, replayed)) => {
                scenario.load.schedule = points;
                scenario.load.replayed = Some(replayed);
            }
            Err((message, help)) => {
                let (file_name, line, column) = place(&at, set_by.as_deref());
                diags.push(Diagnostic {
                    file: file_name,
                    line,
                    column,
                    key: "load.replay".into(),
                    message,
                    help,
                });
            }
        }
    }
    if diags.is_empty() && !scenario.farm.servers.is_empty() {
        // Each server group's `set` must give a valid server: build them now so that a
        // wrong key or value is reported where it is written.
        if let Err(e) = scenario.server_scenarios() {
            for d in e.diagnostics {
                let g = d
                    .file
                    .strip_prefix("farm.servers[")
                    .and_then(|r| r.split(']').next())
                    .and_then(|n| n.parse::<usize>().ok());
                let set_text = d.file.strip_prefix("--set ");
                let (g, j) = match (g, set_text) {
                    (Some(g), _) => (g, None),
                    (None, Some(t)) => {
                        let hit = scenario
                            .farm
                            .servers
                            .iter()
                            .enumerate()
                            .find_map(|(g, grp)| {
                                grp.set.iter().position(|x| x == t).map(|j| (g, j))
                            });
                        match hit {
                            Some((g, j)) => (g, Some(j)),
                            None => (0, None),
                        }
                    }
                    (None, None) => (0, None),
                };
                let mut path = vec![
                    Seg::Key("farm".into()),
                    Seg::Key("servers".into()),
                    Seg::Index(g),
                    Seg::Key("set".into()),
                ];
                if let Some(j) = j {
                    path.push(Seg::Index(j));
                }
                let (file_name, line, column) = place(&path, None);
                diags.push(Diagnostic {
                    file: file_name,
                    line,
                    column,
                    key: format!("{} → {}", path_string(&path), d.key),
                    message: d.message,
                    help: d.help,
                });
            }
        }
    }
    if diags.is_empty() {
        // What an override made moot goes back to its default, so that the scenario.toml
        // a run writes loads again as it is.
        scenario.clear_ignored();
        Ok(scenario)
    } else {
        Err(LoadError {
            diagnostics: sorted(diags),
        })
    }
}

/// Why an override of `path` would have no effect on `s`, and what to do instead (message,
/// help); `None` when it counts. The file itself may hold both a rate and a schedule (the
/// schedule wins, as documented); an override of the losing one is what is refused, since
/// `--set`, a sweep's axis or a capacity search's `--vary` would then silently change
/// nothing.
fn ignored_override(s: &Scenario, path: &[Seg]) -> Option<(String, String)> {
    use super::LoadMode;
    let keys = key_shape(path);
    let l = &s.load;
    let core = s.hosting() == super::Hosting::AspnetCore;
    let core_why = || match s.aspnet.hosting {
        Some(_) => "aspnet.hosting = \"aspnet_core\"".to_string(),
        None => format!(
            "the default for thread_pool.runtime = \"{}\"",
            s.thread_pool.runtime.name()
        ),
    };
    let to_system_web = "--set aspnet.hosting=system_web to simulate System.Web's ASP.NET on this runtime (thread_pool.runtime = \"net48\" hosts it by default)";
    match keys.as_slice() {
        ["aspnet", k] if core && super::SYSTEM_WEB_KEYS.contains(k) => Some((
            format!(
                "`aspnet.{k}` has no effect: the application is ASP.NET Core in process ({}), which has none of System.Web's aspnet.config throttles, requestQueueLimit or executionTimeout (no Thread.Abort on .NET Core)",
                core_why()
            ),
            to_system_web.into(),
        )),
        ["session_state", k] if core => Some((
            format!(
                "`session_state.{k}` has no effect: the application is ASP.NET Core in process ({}), whose sessions do not lock requests (System.Web's SessionStateModule does)",
                core_why()
            ),
            to_system_web.into(),
        )),
        ["classes", "[]", "enable_session_state"]
            if core
                && s.classes.get(class_index(path)?).is_some_and(|c| {
                    c.enable_session_state != super::EnableSessionState::False
                }) =>
        {
            Some((
                format!(
                    "`enable_session_state` has no effect: the application is ASP.NET Core in process ({}), whose sessions do not lock requests (System.Web's SessionStateModule does)",
                    core_why()
                ),
                to_system_web.into(),
            ))
        }
        ["load", "rate"] if l.replay.is_some() => {
            let file = l.replay.as_ref().map_or("", |r| r.file.as_str());
            Some((
                format!(
                    "`load.rate` has no effect: the scenario's `load.replay` ({file}) gives the rate over time and replaces `rate`"
                ),
                "scale the replayed rates instead: --set load.scale=1.5 (capacity: --vary load.scale); `load.replay.from` starts further into the capture; for a steady rate, use a scenario without the replay".into(),
            ))
        }
        ["load", "rate"] if !l.schedule.is_empty() => {
            let rates: Vec<String> = l.schedule.iter().map(|p| p.rate.to_string()).collect();
            Some((
                format!(
                    "`load.rate` has no effect: the scenario's `load.schedule` ({}) gives the rate over time and replaces `rate`",
                    rates.join(" → ")
                ),
                "to run at a steady rate, drop the schedule too: --set 'load.schedule=[]' (in a sweep file: \"load.schedule\" = [] under [set]); or scale the whole schedule: --set load.scale=1.5 (capacity: --vary load.scale); or change one point's rate, e.g. --set 'load.schedule[0].rate=500/s'".into(),
            ))
        }
        ["load", "rate"] if l.mode == LoadMode::Closed => Some((
            "`load.rate` has no effect in a closed loop (`load.mode = \"closed\"`): the users and their think time make the load".into(),
            "set load.users or load.think_time instead, or --set load.mode=open".into(),
        )),
        ["load", "rate"]
            if !s.classes.is_empty()
                && s
                    .classes
                    .iter()
                    .all(|c| c.rate.is_some() || !c.schedule.is_empty()) =>
        {
            Some((
                "`load.rate` has no effect: every class arrives at its own `rate` or `schedule`".into(),
                "set classes[N].rate instead".into(),
            ))
        }
        ["load", k @ ("users" | "think_time")] if l.mode == LoadMode::Open => Some((
            format!(
                "`load.{k}` has no effect in an open loop (`load.mode = \"open\"`): requests arrive at `load.rate` whatever the answers"
            ),
            "--set load.mode=closed to make the load a number of users, or set load.rate".into(),
        )),
        ["session_state", k] if !s.uses_session() => {
            Some((
                format!(
                    "`session_state.{k}` has no effect: no class uses the session (classes[].enable_session_state is false everywhere)"
                ),
                "give the classes that use it enable_session_state = true or \"read_only\"".into(),
            ))
        }
        ["aspnet", "execution_timeout"] if !s.uses_session() && !s.request_timeout_aborts() => {
            let why = if s.has_sync_classes() {
                "`aspnet.compilation_debug` is true (debug=\"true\": nothing is aborted)"
            } else {
                "every class's handler is async (an async request is never aborted)"
            };
            Some((
                format!(
                    "`aspnet.execution_timeout` has no effect here: it aborts requests running synchronously and breaks session locks, but {why} and no class uses the session"
                ),
                "give a class handler = \"sync\" or \"sync_over_async\", set aspnet.compilation_debug = false, or give a class enable_session_state = true".into(),
            ))
        }
        ["aspnet", "compilation_debug"] if !s.has_sync_classes() => Some((
            "`aspnet.compilation_debug` has no effect here: it only stops executionTimeout from aborting requests that run synchronously, and every class's handler is async".into(),
            "give a class handler = \"sync\" or \"sync_over_async\"".into(),
        )),
        ["iis", k] if is_file_cache_key(k) && !s.has_file_steps() =>
        {
            Some((
                format!(
                    "`iis.{k}` has no effect: it sets IIS's user-mode file cache, which only `file` steps use, and no class has one"
                ),
                "read a static file through the cache with a step { file = \"nas\" } in a class with `urls` (see `w3sim show-defaults`, classes[].steps)".into(),
            ))
        }
        ["iis", "file_attribute_check_threshold"] if s.iis.do_dir_monitoring_for_unc => Some((
            "`iis.file_attribute_check_threshold` has no effect: with iis.do_dir_monitoring_for_unc = true IIS learns of changes from notifications and does not check cached files' last-modified dates".into(),
            "--set iis.do_dir_monitoring_for_unc=false for last-modified caching (IIS's default for UNC content)".into(),
        )),
        ["tcp", "incoming_requests_per_connection"] if !s.tcp.incoming_keep_alive => Some((
            "`tcp.incoming_requests_per_connection` has no effect without keep-alive (`tcp.incoming_keep_alive = false`): every request has a connection of its own".into(),
            "--set tcp.incoming_keep_alive=true to study kept-alive connections turning over".into(),
        )),
        ["connections", k] if foreign_connection_key(s, k).is_some() => {
            let counterpart = foreign_connection_key(s, k)?;
            let client = s.connection_client();
            let why = match s.connections.client {
                Some(_) => format!("connections.client = \"{}\"", client.name()),
                None => format!(
                    "the default for thread_pool.runtime = \"{}\"",
                    s.thread_pool.runtime.name()
                ),
            };
            let (mine, other) = match client {
                super::ConnectionClient::ServicePoint => (
                    "HttpWebRequest's ServicePoint",
                    "HttpClient's SocketsHttpHandler (.NET Core / .NET 5+)",
                ),
                super::ConnectionClient::SocketsHttpHandler => (
                    "HttpClient's SocketsHttpHandler",
                    "the .NET Framework ServicePoint",
                ),
            };
            let other_client = match client {
                super::ConnectionClient::ServicePoint => "sockets_http_handler",
                super::ConnectionClient::SocketsHttpHandler => "service_point",
            };
            Some((
                format!(
                    "`connections.{k}` has no effect: outgoing calls go through {mine} ({why}), and `{k}` is a setting of {other}"
                ),
                match counterpart {
                    Some(c) => format!(
                        "set connections.{c} instead (its counterpart), or choose the other client: --set connections.client={other_client}"
                    ),
                    None => format!(
                        "the ServicePoint has no connect timeout (only connections.request_timeout, HttpWebRequest.Timeout); for SocketsHttpHandler: --set connections.client={other_client}"
                    ),
                },
            ))
        }
        ["thread_pool", k]
            if s.thread_pool.runtime == super::Runtime::Net8 && super::IOCP_KEYS.contains(k) =>
        {
            Some((
                format!(
                    "`thread_pool.{k}` has no effect with thread_pool.runtime = \"net8\": .NET 7+ on Windows has no IOCP thread pool (IO completion poller threads hand completions to the worker pool); SetMinThreads/SetMaxThreads only keep the IO value (_legacy_min/maxIOCompletionThreads)"
                ),
                "the pollers' settings are thread_pool.processors_per_io_poller, io_completion_ports and inline_io_completions; for an IOCP pool: --set thread_pool.runtime=net6".into(),
            ))
        }
        ["thread_pool", k]
            if s.thread_pool.runtime != super::Runtime::Net8
                && super::NET8_POLLER_KEYS.contains(k) =>
        {
            Some((
                format!(
                    "`thread_pool.{k}` has no effect with thread_pool.runtime = \"{}\": it sets the IO completion pollers of .NET 7+ (net8), and this runtime has an IOCP thread pool",
                    s.thread_pool.runtime.name()
                ),
                "--set thread_pool.runtime=net8 for the pollers; the IOCP pool's settings are thread_pool.min_io_threads and max_io_threads".into(),
            ))
        }
        ["load_balancer", k] if s.farm.servers.is_empty() => Some((
            format!(
                "`load_balancer.{k}` has no effect: there is no farm, the requests go to the one server"
            ),
            "describe the servers with [[farm.servers]] (e.g. --set 'farm.servers=[{name=\"web\",count=4}]')".into(),
        )),
        ["clients", k]
            if !matches!(*k, "timeout" | "retries") && s.clients.retries == 0 =>
        {
            Some((
                format!("`clients.{k}` has no effect: the clients do not retry (clients.retries = 0)"),
                "set clients.retries to the number of retries after the first attempt".into(),
            ))
        }
        ["classes", "[]", "rate"] => {
            let Seg::Index(i) = path[1] else {
                return None;
            };
            let c = s.classes.get(i)?;
            (!c.schedule.is_empty()).then(|| {
                (
                    format!(
                        "`classes[{i}].rate` has no effect: `classes[{i}].schedule` gives the class's rate over time and replaces `rate`"
                    ),
                    format!(
                        "to make it arrive at a steady rate, drop the schedule too: --set 'classes[{i}].schedule=[]'"
                    ),
                )
            })
        }
        _ => None,
    }
}

/// For a `[connections]` key the scenario's client ignores (a ServicePoint setting under
/// SocketsHttpHandler or the reverse): `Some(its counterpart, if it has one)`.
fn foreign_connection_key(s: &Scenario, key: &str) -> Option<Option<&'static str>> {
    s.connection_client()
        .foreign_keys()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| *c)
}

/// A key path with its list indices as `[]`: `classes[2].rate` → `["classes", "[]", "rate"]`.
/// The index of the `classes[i]` a path starts with.
fn class_index(path: &[Seg]) -> Option<usize> {
    match path {
        [Seg::Key(c), Seg::Index(i), ..] if c == "classes" => Some(*i),
        _ => None,
    }
}

fn key_shape(path: &[Seg]) -> Vec<&str> {
    path.iter()
        .map(|p| match p {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "[]",
        })
        .collect()
}

/// Whether `key` of `[iis]` sets the user-mode file cache, which only `file` steps use.
fn is_file_cache_key(key: &str) -> bool {
    matches!(
        key,
        "disable_memory_cache"
            | "object_cache_ttl"
            | "file_attribute_check_threshold"
            | "max_cached_file_size"
            | "mem_cache_size"
    )
}

/// The settings whose values make the one at `path` ignored (see [`ignored_override`]):
/// an override of any of them makes a file's value moot rather than a mistake.
fn ignored_because(path: &[Seg]) -> Vec<Vec<Seg>> {
    let k = |a: &str| Seg::Key(a.to_string());
    let keys = key_shape(path);
    match keys.as_slice() {
        ["load", "rate"] => vec![
            vec![k("load"), k("replay")],
            vec![k("load"), k("schedule")],
            vec![k("load"), k("mode")],
            vec![k("classes")],
        ],
        ["load", _] => vec![vec![k("load"), k("mode")]],
        ["classes", "[]", "rate"] => {
            vec![path[..2].iter().cloned().chain([k("schedule")]).collect()]
        }
        ["aspnet", key] if super::SYSTEM_WEB_KEYS.contains(key) => vec![
            vec![k("classes")],
            vec![k("aspnet"), k("hosting")],
            vec![k("aspnet"), k("compilation_debug")],
            vec![k("thread_pool"), k("runtime")],
        ],
        ["session_state", _] => vec![
            vec![k("classes")],
            vec![k("aspnet"), k("hosting")],
            vec![k("thread_pool"), k("runtime")],
        ],
        ["classes", "[]", "enable_session_state"] => vec![
            vec![k("aspnet"), k("hosting")],
            vec![k("thread_pool"), k("runtime")],
        ],
        ["aspnet", "execution_timeout"] => {
            vec![
                vec![k("classes")],
                vec![k("aspnet"), k("compilation_debug")],
            ]
        }
        ["iis", "file_attribute_check_threshold"] => vec![
            vec![k("classes")],
            vec![k("iis"), k("do_dir_monitoring_for_unc")],
        ],
        ["iis", key] if is_file_cache_key(key) => vec![vec![k("classes")]],
        ["tcp", "incoming_requests_per_connection"] => {
            vec![vec![k("tcp"), k("incoming_keep_alive")]]
        }
        ["load_balancer", _] => vec![vec![k("farm")]],
        ["thread_pool", key]
            if super::IOCP_KEYS.contains(key) || super::NET8_POLLER_KEYS.contains(key) =>
        {
            vec![vec![k("thread_pool"), k("runtime")]]
        }
        ["connections", _] => vec![
            vec![k("connections"), k("client")],
            vec![k("thread_pool"), k("runtime")],
        ],
        ["clients", _] => vec![vec![k("clients"), k("retries")]],
        _ => Vec::new(),
    }
}

/// The value at `path` in a serialised scenario.
fn value_at<'v>(v: &'v toml::Value, path: &[Seg]) -> Option<&'v toml::Value> {
    path.iter().try_fold(v, |cur, seg| match seg {
        Seg::Key(k) => cur.get(k.as_str()),
        Seg::Index(i) => cur.get(*i),
    })
}

/// The path of every value the file writes that is not itself a table (tables and
/// arrays of tables are entered; other arrays are leaves).
fn written_paths(t: &DeTable<'_>, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    for (k, v) in t.iter() {
        prefix.push(Seg::Key(k.get_ref().to_string()));
        match v.get_ref() {
            DeValue::Table(sub) => written_paths(sub, prefix, out),
            DeValue::Array(a)
                if !a.is_empty() && a.iter().all(|e| matches!(e.get_ref(), DeValue::Table(_))) =>
            {
                for (i, e) in a.iter().enumerate() {
                    if let DeValue::Table(sub) = e.get_ref() {
                        prefix.push(Seg::Index(i));
                        written_paths(sub, prefix, out);
                        prefix.pop();
                    }
                }
                out.push(prefix.clone());
            }
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
}

/// Diagnostics in reading order: the file's by line and column, then `--set`'s.
fn sorted(mut d: Vec<Diagnostic>) -> Vec<Diagnostic> {
    d.sort_by_key(|x| (x.file.starts_with("--set"), x.line == 0, x.line, x.column));
    d
}

/// The default scenario as a parsed TOML document, to copy lists from when an
/// override indexes a list the file does not write (`--set classes[0].service=…`).
fn defaults_table() -> &'static Spanned<DeTable<'static>> {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static TABLE: std::sync::OnceLock<Spanned<DeTable<'static>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let text =
            TEXT.get_or_init(|| toml::to_string(&Scenario::default()).expect("defaults serialise"));
        DeTable::parse(text).expect("defaults parse")
    })
}

/// Copies, from the defaults, every list on `path` that the document lacks.
fn fill_default_lists(table: &mut DeTable<'_>, path: &[Seg]) {
    let defaults = defaults_table().get_ref();
    if let [Seg::Key(k), Seg::Index(_), ..] = path {
        if !table.contains_key(k.as_str()) {
            if let Some(v) = defaults.get(k.as_str()) {
                table.insert(Spanned::new(0..0, k.clone().into()), v.clone());
            }
        }
    }
    // Nested lists (e.g. load.bursts) one level down.
    if let [Seg::Key(t), Seg::Key(k), Seg::Index(_), ..] = path {
        if let (Some(DeValue::Table(d)), Some(DeValue::Table(cur))) = (
            defaults.get(t.as_str()).map(|v| v.get_ref()),
            table.get_mut(t.as_str()).map(|v| v.get_mut()),
        ) {
            if !cur.contains_key(k.as_str()) {
                if let Some(v) = d.get(k.as_str()) {
                    cur.insert(Spanned::new(0..0, k.clone().into()), v.clone());
                }
            }
        }
    }
}

/// Deserialises any scenario section type from TOML text (used by sweeps and tests).
pub fn from_toml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, toml::de::Error> {
    toml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_both_ways() {
        let a = parse_path("classes[0].service").unwrap();
        let b = parse_path("classes.0.service").unwrap();
        assert_eq!(a, b);
        assert_eq!(path_string(&a), "classes[0].service");
    }

    #[test]
    fn nearest_key_is_suggested() {
        assert_eq!(
            nearest("quue_length", ["queue_length", "queue_counts_in_flight"]),
            Some("queue_length")
        );
        assert_eq!(nearest("zzzzzzzz", ["queue_length"]), None);
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
