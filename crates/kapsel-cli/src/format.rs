//! Output as docker prints it: Go templates (`--format`), `table` output aligned like Go's
//! tabwriter, JSON indented like Go's `json.Indent`, and docker's human sizes and
//! durations ("10.2kB", "2 minutes ago").

use std::collections::HashMap;
use std::fmt::Write as _;

use gtmpl::{Context, FuncError, Value};
use gtmpl_value::Number;

/// A bad `--format`.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template: {0}")]
    Exec(String),
}

// ---------------------------------------------------------------------------------------
// Sizes, durations, times
//
// Sizes and durations are go-units' exact wording ("10.2kB", "About a minute"), which
// no Rust crate reproduces (humansize and bytesize print "10.24 KB" and the like), so
// they are ported here. Calendar work is left to libc (local zones) and humantime.
// ---------------------------------------------------------------------------------------

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn scale(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units' `HumanSizeWithPrecision`: decimal units, `precision` significant digits
/// (`images` and `ps` use 3: "10.2kB").
pub fn human_size_precision(size: f64, precision: usize) -> String {
    let (v, unit) = scale(size, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", go_g(v, precision))
}

/// go-units' `HumanSize` (4 significant digits: "10.24kB").
pub fn human_size(size: f64) -> String {
    human_size_precision(size, 4)
}

/// go-units' `BytesSize`: binary units ("23.54GiB"), as `docker info` prints memory.
pub fn bytes_size(size: f64) -> String {
    let (v, unit) = scale(size, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", go_g(v, 4))
}

/// Go's `%.{precision}g`: `precision` significant digits, trailing zeros dropped, and
/// exponent form when the exponent is below -4 or at least `precision` (go-units really
/// prints "1e+03kB" for 999.9kB, so this does too).
pub fn go_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.abs());
    }
    let decimals = (p as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units' `HumanDuration`, what docker puts before " ago".
pub fn human_duration(seconds: i64) -> String {
    let hours = ((seconds as f64) / 3600.0 + 0.5) as i64;
    match seconds {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// "2 minutes ago" for a unix time, as docker's CREATED columns.
pub fn since(unix: i64) -> String {
    format!("{} ago", human_duration(now_unix() - unix))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `unix` broken down into calendar fields by libc: in the local zone (`TZ`, else
/// /etc/localtime) with the zone's abbreviation, or in UTC.
fn broken_down(unix: i64, local: bool) -> (libc::tm, String) {
    let t = unix as libc::time_t;
    // SAFETY: tzset only reads TZ and updates libc's zone globals; localtime_r and
    // gmtime_r write only into `tm`, which we own; tm_zone, when set, points to a
    // NUL-terminated string that libc keeps.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if local {
            extern "C" {
                fn tzset();
            }
            tzset();
            if !libc::localtime_r(&t, &mut tm).is_null() && !tm.tm_zone.is_null() {
                let zone = std::ffi::CStr::from_ptr(tm.tm_zone).to_string_lossy();
                return (tm, zone.into_owned());
            }
        }
        libc::gmtime_r(&t, &mut tm);
        tm.tm_gmtoff = 0;
        (tm, "UTC".into())
    }
}

/// "2024-02-29" and "12:30:15" of a broken-down time.
fn date_and_time(tm: &libc::tm) -> (String, String) {
    (
        format!(
            "{:04}-{:02}-{:02}",
            i64::from(tm.tm_year) + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        ),
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
    )
}

/// A zone offset in seconds as Go prints it: `sep` between hours and minutes ("+0200",
/// "+02:00").
fn offset(seconds: i64, sep: &str) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    format!("{sign}{:02}{sep}{:02}", s / 3600, s / 60 % 60)
}

/// Go's `time.Unix(unix, 0).String()` in the local zone:
/// "2024-02-29 12:30:15 +0000 UTC", as docker's `CreatedAt` fields.
pub fn go_time_string(unix: i64) -> String {
    go_time_string_nanos(unix, 0)
}

/// Go's `time.Time.String()` of a time with nanoseconds, in the local zone: the
/// fraction printed without trailing zeros ("2024-02-29 12:30:15.64647 +0000 UTC").
pub fn go_time_string_nanos(unix: i64, nanos: u32) -> String {
    let (tm, zone) = broken_down(unix, true);
    let (date, time) = date_and_time(&tm);
    let fraction = format!("{nanos:09}");
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!(
        "{date} {time}{dot}{fraction} {} {zone}",
        offset(tm.tm_gmtoff, "")
    )
}

/// Go's `time.Unix(unix, 0).Format(time.RFC3339)` in the local zone:
/// "2024-02-29T12:30:15Z" in UTC, "2024-02-29T14:30:15+02:00" elsewhere.
pub fn local_rfc3339(unix: i64) -> String {
    let (tm, _) = broken_down(unix, true);
    let (date, time) = date_and_time(&tm);
    match tm.tm_gmtoff {
        0 => format!("{date}T{time}Z"),
        off => format!("{date}T{time}{}", offset(off, ":")),
    }
}

/// Go's `time.ANSIC` layout of a unix time in UTC: "Fri May 30 12:07:14 2025".
pub fn ansic_utc(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (tm, _) = broken_down(unix, false);
    let (_, time) = date_and_time(&tm);
    format!(
        "{} {} {:>2} {time} {}",
        DAYS[tm.tm_wday.rem_euclid(7) as usize],
        MONTHS[tm.tm_mon.rem_euclid(12) as usize],
        tm.tm_mday,
        i64::from(tm.tm_year) + 1900
    )
}

/// The order docker sorts names and port lines in (fvbommel/sortorder's `NaturalLess`):
/// runs of digits compare by value, before any other byte, and with fewer leading zeros
/// first; other bytes compare as bytes. Hand-written because the natural-sort crates
/// order digits, case or spaces differently, and the output must be docker's.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            match a[i].cmp(&b[j]) {
                Ordering::Equal => (i, j) = (i + 1, j + 1),
                other => return other,
            }
            continue;
        }
        let run = |s: &[u8], mut k: usize| {
            while k < s.len() && s[k] == b'0' {
                k += 1;
            }
            let start = k;
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            (start, k)
        };
        let ((sa, ea), (sb, eb)) = (run(a, i), run(b, j));
        let by_value = (ea - sa)
            .cmp(&(eb - sb))
            .then_with(|| a[sa..ea].cmp(&b[sb..eb]))
            .then_with(|| sa.cmp(&sb));
        if by_value != Ordering::Equal {
            return by_value;
        }
        (i, j) = (ea, eb);
    }
    // Equal so far (at the same index): the longer one sorts last.
    a.len().cmp(&b.len())
}

/// RFC 3339 (`2024-02-29T12:30:15.123Z`, `…+02:00`) → unix seconds and nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    // humantime reads UTC times only: a numeric offset is split off and applied here.
    let (time, offset) = match s.strip_suffix(['Z', 'z']) {
        Some(time) => (time, 0),
        None => {
            let at = s.len().checked_sub(6)?;
            let (time, off) = (s.get(..at)?, s.get(at..)?);
            let sign = match off.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = off[1..].split_once(':')?;
            (
                time,
                sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
            )
        }
    };
    let t = humantime::parse_rfc3339_weak(time).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((d.as_secs() as i64 - offset, d.subsec_nanos()))
}

/// Go's `time.ParseDuration` ("1m30s", "500ms", "1.5h") → nanoseconds. Not humantime's
/// parser: it has no fractions or signs, and takes units Go refuses ("1d", "2min").
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .bytes()
            .take_while(|c| c.is_ascii_alphabetic() || *c == 0xc2 || *c == 0xb5)
            .count();
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    let total = total as i64;
    Some(if neg { -total } else { total })
}

// ---------------------------------------------------------------------------------------
// Tab alignment
// ---------------------------------------------------------------------------------------

/// Go's `text/tabwriter` with space padding and no flags, as docker uses it. (The
/// `tabwriter` crate measures display width where Go counts characters, so its columns
/// differ from docker's for wide characters.) cells end at
/// tabs; a column is as wide as its widest cell plus `padding`, at least `minwidth`; the
/// text after a line's last tab is not aligned; a column block ends at the first line
/// that has no cell in that column.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // A trailing newline leaves an empty last "line" that is not output.
    let terminated = text.ends_with('\n');
    if terminated {
        lines.pop();
    }
    let mut out = String::new();
    let mut widths = Vec::new();
    let w = TabWriter { minwidth, padding };
    w.format(&lines, &mut widths, 0, lines.len(), &mut out);
    if !terminated && out.ends_with('\n') {
        out.pop();
    }
    out
}

struct TabWriter {
    minwidth: usize,
    padding: usize,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

impl TabWriter {
    fn format(
        &self,
        lines: &[Vec<&str>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A cell in this column: print the lines before the block, then size it.
            self.write_lines(lines, widths, line0, this, out);
            line0 = this;
            let mut width_here = self.minwidth;
            while this < line1 && column + 1 < lines[this].len() {
                width_here = width_here.max(width(lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(width_here);
            self.format(lines, widths, line0, this, out);
            widths.pop();
            line0 = this;
        }
        self.write_lines(lines, widths, line0, line1, out);
    }

    fn write_lines(
        &self,
        lines: &[Vec<&str>],
        widths: &[usize],
        line0: usize,
        line1: usize,
        out: &mut String,
    ) {
        for line in &lines[line0..line1] {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if j < widths.len() {
                    let pad = widths[j].saturating_sub(width(cell));
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// Go's `json.Indent(dst, src, "", "    ")`: re-indents JSON text without re-encoding
/// it, so the daemon's key order and escapes survive (`docker inspect` prints the raw
/// answer this way).
pub fn indent_json(src: &[u8]) -> String {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut need_indent = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 4));
    };
    for &c in src {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != b']' && c != b'}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                need_indent = true;
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'}' | b']' => {
                if need_indent {
                    // An empty object or array stays on one line.
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `json.Marshal` HTML escaping (`<`, `>`, `&` as `\u003c`…), which docker's
/// formatting contexts keep when printed with `{{json .}}`.
fn escape_html(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

// ---------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------

/// Marks a map that stands for one of docker's formatting contexts (a `ps` or `images`
/// row): `{{json .}}` of it escapes HTML as docker's context marshalling does. Never
/// printed.
const CONTEXT_MARKER: &str = "\u{0}context";

/// Go field names that differ from the JSON keys of the same field: templates on
/// docker's typed values use the former, raw JSON the latter; both work in docker.
const GO_ALIASES: &[(&str, &str)] = &[
    ("Id", "ID"),
    ("ApiVersion", "APIVersion"),
    ("NanoCpus", "NanoCPUs"),
];

/// JSON → template value. Objects become maps (a missing key prints `<no value>`, as in
/// docker's raw-JSON fallback); with `aliases`, Go field names are added beside JSON
/// keys that differ from them.
pub fn to_value(json: &serde_json::Value, aliases: bool) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(Number::from(i))
            } else if let Some(u) = n.as_u64() {
                Value::Number(Number::from(u))
            } else {
                Value::Number(Number::from(n.as_f64().unwrap_or(0.0)))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => {
            Value::Array(a.iter().map(|v| to_value(v, aliases)).collect())
        }
        serde_json::Value::Object(o) => {
            let mut map: HashMap<String, Value> = o
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v, aliases)))
                .collect();
            if aliases {
                for (json_name, go_name) in GO_ALIASES {
                    if let Some(v) = map.get(*json_name).cloned() {
                        map.entry(go_name.to_string()).or_insert(v);
                    }
                }
            }
            Value::Map(map)
        }
    }
}

/// A formatting context (one `ps`/`images` row): string fields, marked so `{{json .}}`
/// prints it as docker does.
pub fn context(fields: &[(&str, String)]) -> Value {
    let mut map: HashMap<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    map.insert(CONTEXT_MARKER.into(), Value::Bool(true));
    Value::Map(map)
}

/// Template value → JSON, for the `json` function. Maps marshal with sorted keys, as Go
/// maps do; alias keys added by [`to_value`] are dropped again.
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(m) | Value::Object(m) => {
            let mut obj = serde_json::Map::new();
            let mut keys: Vec<&String> = m.keys().filter(|k| *k != CONTEXT_MARKER).collect();
            keys.sort();
            for k in keys {
                let alias_of = GO_ALIASES
                    .iter()
                    .find(|(json_name, go_name)| k == go_name && m.contains_key(*json_name));
                if alias_of.is_none() {
                    obj.insert(k.clone(), to_json(&m[k]));
                }
            }
            serde_json::Value::Object(obj)
        }
    }
}

/// How Go's `fmt` prints a value in a template action: slices as `[a b]`, maps as
/// `map[k:v]` with sorted keys, nil as `<nil>`.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::NoValue => "<no value>".into(),
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            _ => {
                let f = n.as_f64().unwrap_or(0.0);
                if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
                    format!("{f:e}").replace('e', "e+").replace("e+-", "e-")
                } else {
                    f.to_string()
                }
            }
        },
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_print).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Map(m) | Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| *k != CONTEXT_MARKER).collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_print(&m[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Function(_) => String::new(),
    }
}

fn arg_str(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(go_print(other)),
        None => Err(FuncError::AtLeastXArgs(name.into(), i + 1)),
    }
}

fn arg_int(args: &[Value], i: usize, name: &str) -> Result<i64, FuncError> {
    match args.get(i) {
        Some(Value::Number(n)) => n.as_i64().ok_or(FuncError::UnableToConvertFromValue),
        Some(_) => Err(FuncError::UnableToConvertFromValue),
        None => Err(FuncError::AtLeastXArgs(name.into(), i + 1)),
    }
}

/// Wrapped around every printing action: prints values as Go's fmt would.
fn fmt_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(args.last().map(go_print).unwrap_or_default()))
}

fn json_func(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::ExactlyXArgs("json".into(), 1))?;
    let text = to_json(v).to_string();
    let is_context = matches!(v, Value::Map(m) if m.contains_key(CONTEXT_MARKER));
    Ok(Value::String(if is_context {
        escape_html(&text)
    } else {
        text
    }))
}

fn join_func(args: &[Value]) -> Result<Value, FuncError> {
    let sep = arg_str(args, 1, "join")?;
    let items: Vec<String> = match args.first() {
        Some(Value::Array(a)) => a.iter().map(go_print).collect(),
        Some(other) => vec![go_print(other)],
        None => return Err(FuncError::AtLeastXArgs("join".into(), 2)),
    };
    Ok(Value::String(items.join(&sep)))
}

fn split_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "split")?;
    let sep = arg_str(args, 1, "split")?;
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.into()))
            .collect(),
    ))
}

fn lower_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0, "lower")?.to_lowercase()))
}

fn upper_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0, "upper")?.to_uppercase()))
}

fn title_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}

fn truncate_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "truncate")?;
    let n = arg_int(args, 1, "truncate")?.max(0) as usize;
    Ok(Value::String(s.chars().take(n).collect()))
}

fn pad_func(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "pad")?;
    let before = arg_int(args, 1, "pad")?.max(0) as usize;
    let after = arg_int(args, 2, "pad")?.max(0) as usize;
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(before),
        " ".repeat(after)
    )))
}

/// Go's `index`, where a key missing from a map gives the zero value of docker's typed
/// maps (an empty string) rather than an error.
fn index_func(args: &[Value]) -> Result<Value, FuncError> {
    let (first, keys) = args
        .split_first()
        .ok_or_else(|| FuncError::AtLeastXArgs("index".into(), 2))?;
    if keys.is_empty() {
        return Err(FuncError::AtLeastXArgs("index".into(), 2));
    }
    let mut current = first.clone();
    for key in keys {
        current = match (&current, key) {
            (Value::Map(m) | Value::Object(m), k) => {
                let k = match k {
                    Value::String(s) => s.clone(),
                    other => go_print(other),
                };
                m.get(&k).cloned().unwrap_or(Value::String(String::new()))
            }
            (Value::Array(a), Value::Number(n)) => {
                let i = n.as_u64().ok_or(FuncError::UnableToConvertFromValue)? as usize;
                a.get(i).cloned().ok_or_else(|| {
                    FuncError::Generic(format!("error calling index: index out of range: {i}"))
                })?
            }
            (Value::Nil | Value::NoValue, _) => {
                return Err(FuncError::Generic(
                    "error calling index: index of untyped nil".into(),
                ))
            }
            (other, _) => {
                return Err(FuncError::Generic(format!(
                    "error calling index: can't index item of type {}",
                    go_print(other)
                )))
            }
        };
    }
    Ok(current)
}

/// In a table's header row, docker's functions return their first argument (the
/// column title) unchanged.
fn header_func(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args.first().cloned().unwrap_or(Value::NoValue))
}

/// docker's template functions (`templates.basicFunctions`) plus the printer.
const FUNCS: &[(&str, gtmpl::Func)] = &[
    ("__fmt", fmt_func),
    ("json", json_func),
    ("join", join_func),
    ("split", split_func),
    ("lower", lower_func),
    ("upper", upper_func),
    ("title", title_func),
    ("truncate", truncate_func),
    ("pad", pad_func),
    ("index", index_func),
];

const HEADER_FUNCS: &[&str] = &[
    "json", "join", "split", "lower", "upper", "title", "truncate", "pad",
];

/// A parsed `--format`: plain, or `table …` (a header row, tab-aligned columns).
pub struct Template {
    body: gtmpl::Template,
    header: gtmpl::Template,
    table: bool,
}

impl Template {
    /// Parses a user's format: `table` prefix, `json` shorthand and the `\t`/`\n`
    /// escapes as docker's formatter handles them; `default_table` stands in for a bare
    /// `table`.
    pub fn parse(format: &str, default_table: &str) -> Result<Template, FormatError> {
        let (table, text) = match format.strip_prefix("table") {
            Some(rest) => {
                let rest = rest.trim_matches(' ');
                let rest = if rest.is_empty() {
                    default_table
                        .strip_prefix("table")
                        .unwrap_or(default_table)
                        .trim_matches(' ')
                } else {
                    rest
                };
                (true, rest.to_string())
            }
            None if format == "json" => (false, "{{json .}}".to_string()),
            None => (false, format.trim_matches(' ').to_string()),
        };
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        Template::compile(&text, table)
    }

    /// A template given in full (docker's own default formats, inspect `-f`), without the
    /// list formatter's handling of `table` and escapes.
    pub fn raw(text: &str) -> Result<Template, FormatError> {
        Template::compile(text, false)
    }

    fn compile(text: &str, table: bool) -> Result<Template, FormatError> {
        let wrapped = wrap_actions(text);
        let mut body = gtmpl::Template::default();
        body.add_funcs(FUNCS);
        body.parse(wrapped.clone())
            .map_err(|e| FormatError::Parse(e.to_string()))?;
        let mut header = gtmpl::Template::default();
        header.add_funcs(FUNCS);
        for name in HEADER_FUNCS {
            header.add_func(name, header_func);
        }
        header
            .parse(wrapped)
            .map_err(|e| FormatError::Parse(e.to_string()))?;
        Ok(Template {
            body,
            header,
            table,
        })
    }

    #[cfg(test)]
    pub fn is_table(&self) -> bool {
        self.table
    }

    pub fn render(&self, ctx: &Value) -> Result<String, FormatError> {
        self.body
            .render(&Context::from(ctx.clone()))
            .map_err(|e| FormatError::Exec(e.to_string()))
    }

    fn render_header(&self, headers: &Value) -> Result<String, FormatError> {
        self.header
            .render(&Context::from(headers.clone()))
            .map_err(|e| FormatError::Exec(e.to_string()))
    }

    /// Renders a list as docker's formatter does: one line per row; for a table, the
    /// header row first (each field's title from `headers`) and columns aligned as
    /// tabwriter(minwidth 10, padding 3) aligns them.
    pub fn render_list(
        &self,
        headers: &[(&str, &str)],
        rows: &[Value],
    ) -> Result<String, FormatError> {
        let mut text = String::new();
        for row in rows {
            text.push_str(&self.render(row)?);
            text.push('\n');
        }
        if !self.table {
            return Ok(text);
        }
        let titles: HashMap<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let mut all = self.render_header(&Value::Map(titles))?;
        all.push('\n');
        all.push_str(&text);
        Ok(tabwrite(&all, 10, 3))
    }
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// Appends `| __fmt` to every action that prints, so values print as Go prints them
/// (gtmpl would print arrays and maps in Rust's debug form). Control actions, variable
/// declarations and comments are left alone.
fn wrap_actions(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let inner_start = start + 2;
        let Some(len) = action_len(&rest[inner_start..]) else {
            // Unterminated: leave it for the parser to report.
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[inner_start..inner_start + len];
        out.push_str("{{");
        out.push_str(&wrap_one(inner));
        out.push_str("}}");
        rest = &rest[inner_start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Length of an action's text up to its closing `}}`, skipping quoted strings.
fn action_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn wrap_one(inner: &str) -> String {
    let left_trim = inner.starts_with("- ");
    let right_trim = inner.ends_with(" -");
    let body_start = if left_trim { 2 } else { 0 };
    let body_end = if right_trim {
        inner.len() - 2
    } else {
        inner.len()
    };
    let body = inner[body_start..body_end.max(body_start)].trim();
    let first_word = body
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    let declares = body.starts_with('$') && {
        let after = body.trim_start_matches(|c: char| c == '$' || c.is_alphanumeric() || c == '_');
        let after = after.trim_start();
        after.starts_with(":=") || (after.starts_with('=') && !after.starts_with("=="))
    };
    if body.is_empty() || body.starts_with("/*") || KEYWORDS.contains(&first_word) || declares {
        return inner.to_string();
    }
    format!(
        "{}{body} | __fmt{}",
        if left_trim { "- " } else { "" },
        if right_trim { " -" } else { "" }
    )
}

/// Renders one value with a template and a trailing newline, as `inspect -f`, `info -f`
/// and `version -f` print.
pub fn render_line(template: &Template, value: &Value) -> Result<String, FormatError> {
    let mut s = template.render(value)?;
    let _ = writeln!(s);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn natural_order_is_docker_sortorder() {
        let mut names = vec![
            "n10", "n2", "bridge", "n02", "host", "a", "1x", "n2a", "none",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["1x", "a", "bridge", "host", "n2", "n2a", "n02", "n10", "none"]
        );
        assert_eq!(natural_cmp("x", "x"), std::cmp::Ordering::Equal);
        assert_eq!(
            natural_cmp("53/tcp -> 1", "7000/tcp -> 1"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn go_times_print_their_nanoseconds() {
        std::env::set_var("TZ", "UTC");
        assert_eq!(
            go_time_string_nanos(1_700_000_000, 646_471_000),
            "2023-11-14 22:13:20.646471 +0000 UTC"
        );
        assert_eq!(
            go_time_string(1_700_000_000),
            "2023-11-14 22:13:20 +0000 UTC"
        );
    }

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size_precision(10240.0, 3), "10.2kB");
        assert_eq!(human_size(10240.0), "10.24kB");
        assert_eq!(human_size_precision(5_300_000.0, 3), "5.3MB");
        assert_eq!(human_size_precision(999.0, 3), "999B");
        assert_eq!(human_size_precision(0.0, 3), "0B");
        assert_eq!(human_size_precision(1_000_000.0, 3), "1MB");
        assert_eq!(human_size_precision(1_234_567.0, 3), "1.23MB");
        assert_eq!(human_size_precision(999_900.0, 3), "1e+03kB");
        assert_eq!(bytes_size(25_275_998_208.0), "23.54GiB");
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(go_g(0.000012345, 3), "1.23e-05");
    }

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(119), "About a minute");
        assert_eq!(human_duration(120), "2 minutes");
        assert_eq!(human_duration(59 * 60), "59 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5400), "2 hours");
        assert_eq!(human_duration(47 * 3600), "47 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(20 * 86_400), "2 weeks");
        assert_eq!(human_duration(90 * 86_400), "3 months");
        assert_eq!(human_duration(800 * 86_400), "2 years");
    }

    #[test]
    fn times_parse_and_print() {
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:15Z"),
            Some((1_709_209_815, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:30:15.5+02:00"),
            Some((1_709_209_815, 500_000_000))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        std::env::set_var("TZ", "UTC");
        assert_eq!(
            go_time_string(1_709_209_815),
            "2024-02-29 12:30:15 +0000 UTC"
        );
        assert_eq!(local_rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("10"), None);
    }

    #[test]
    fn tabwriter_aligns_like_go() {
        let text = "REPOSITORY\tTAG\tIMAGE ID\tSIZE\nhello-test\t1\t3d16af56c187\t10.2kB\n";
        assert_eq!(
            tabwrite(text, 10, 3),
            "REPOSITORY   TAG       IMAGE ID       SIZE\n\
             hello-test   1         3d16af56c187   10.2kB\n"
        );
        // A line without tabs ends the column block.
        assert_eq!(
            tabwrite("a\tb\nno tabs\nlonger cell\tc\n", 1, 1),
            "a b\nno tabs\nlonger cell c\n"
        );
        assert_eq!(tabwrite(" Version:\t1\n", 20, 1), " Version:           1\n");
    }

    #[test]
    fn json_is_indented_as_go_does() {
        let raw = br#"[{"a":1,"b":[],"c":{},"d":["x","y"],"e":{"k":"v: \"q\""}}]"#;
        assert_eq!(
            indent_json(raw),
            "[\n    {\n        \"a\": 1,\n        \"b\": [],\n        \"c\": {},\n        \"d\": [\n            \"x\",\n            \"y\"\n        ],\n        \"e\": {\n            \"k\": \"v: \\\"q\\\"\"\n        }\n    }\n]"
        );
    }

    fn render(format: &str, data: serde_json::Value) -> String {
        Template::raw(format)
            .unwrap()
            .render(&to_value(&data, true))
            .unwrap()
    }

    #[test]
    fn templates_handle_docker_idioms() {
        let image = json!({
            "Id": "sha256:abc",
            "Config": {"Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Labels": {"k": "v", "a": "b"}},
            "Size": 10240,
            "Variant": null,
        });
        assert_eq!(render("{{.Config.Image}}", image.clone()), "busybox");
        assert_eq!(render("{{.Config.Cmd}}", image.clone()), "[sh -c echo hi]");
        assert_eq!(
            render("{{json .Config.Cmd}}", image.clone()),
            r#"["sh","-c","echo hi"]"#
        );
        assert_eq!(
            render(r#"{{index .Config.Labels "k"}}"#, image.clone()),
            "v"
        );
        assert_eq!(
            render(r#"[{{index .Config.Labels "missing"}}]"#, image.clone()),
            "[]"
        );
        assert_eq!(render("{{index .Config.Cmd 1}}", image.clone()), "-c");
        assert_eq!(render("{{.Config.Labels}}", image.clone()), "map[a:b k:v]");
        assert_eq!(
            render("{{.Size}} {{.Variant}} {{.Nope}}", image.clone()),
            "10240 <nil> <no value>"
        );
        assert_eq!(
            render("{{.ID}}={{.Id}}", image.clone()),
            "sha256:abc=sha256:abc"
        );
        assert_eq!(
            render("{{json .}}", json!({"Id": "x", "b": [1]})),
            r#"{"Id":"x","b":[1]}"#
        );
        // gtmpl ranges over a map in hash order (Go sorts keys): one key keeps it exact.
        assert_eq!(
            render(
                "{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}",
                json!({"L": {"k": "v"}})
            ),
            "k=v;"
        );
        assert_eq!(
            render("{{range .Config.Cmd}}<{{.}}>{{end}}", image.clone()),
            "<sh><-c><echo hi>"
        );
        assert_eq!(
            render("{{if .Config.Labels}}yes{{else}}no{{end}}", image.clone()),
            "yes"
        );
        assert_eq!(
            render("{{join .Config.Cmd \",\"}}", image.clone()),
            "sh,-c,echo hi"
        );
        assert_eq!(
            render("{{upper .Config.Image | lower}}", image.clone()),
            "busybox"
        );
        assert_eq!(render("{{- .Config.Image -}} x", image), "busyboxx");
    }

    #[test]
    fn tables_have_headers_and_aligned_columns() {
        let t = Template::parse("table {{.ID}}\\t{{.Repository}}\\t{{json .Tag}}", "").unwrap();
        assert!(t.is_table());
        let rows = vec![context(&[
            ("ID", "3d16af56c187".into()),
            ("Repository", "hello-test".into()),
            ("Tag", "1".into()),
        ])];
        let out = t
            .render_list(
                &[
                    ("ID", "IMAGE ID"),
                    ("Repository", "REPOSITORY"),
                    ("Tag", "TAG"),
                ],
                &rows,
            )
            .unwrap();
        assert_eq!(
            out,
            "IMAGE ID       REPOSITORY   TAG\n3d16af56c187   hello-test   \"1\"\n"
        );
        let json = Template::parse("{{json .}}", "").unwrap();
        assert_eq!(
            json.render(&context(&[("Digest", "<none>".into()), ("ID", "x".into())]))
                .unwrap(),
            r#"{"Digest":"\u003cnone\u003e","ID":"x"}"#
        );
        let bare = Template::parse("table", "table {{.ID}}").unwrap();
        assert!(bare.is_table());
        assert!(Template::parse("{{.ID", "").is_err());
    }
}
