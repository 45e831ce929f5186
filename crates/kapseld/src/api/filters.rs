//! The `filters` query parameter of the list, prune and events endpoints, and the values
//! dockerd accepts in it: JSON `{"key": ["value", ...]}` (or the older
//! `{"key": {"value": true}}`), keys checked against what the endpoint knows, times as
//! durations, timestamps or dates, labels as `key` or `key=value`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::ApiError;

#[derive(Debug, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses `text`; a key outside `known` is refused, as dockerd does.
    pub fn parse(text: Option<&str>, known: &[&str]) -> Result<Filters, ApiError> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Filters::default());
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid filters {text:?}: {e}")))?;
        let mut map = BTreeMap::new();
        for (key, values) in value.as_object().into_iter().flatten() {
            if !known.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
            let list = match values {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => Vec::new(),
            };
            map.insert(key.clone(), list);
        }
        Ok(Filters(map))
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.0.iter()
    }

    /// A yes/no key such as `dangling` (`true`/`1`, `false`/`0`; the last one given).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let values = self
            .get(key)
            .iter()
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(format!("invalid filter '{key}={v}'"))),
            })
            .collect::<Result<Vec<bool>, ApiError>>()?;
        Ok(values.last().copied())
    }

    /// The one time a key such as `until` gives (seconds since the epoch), if any.
    pub fn time(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.get(key) {
            [] => Ok(None),
            [one] => timestamp(one, now()).map(Some),
            _ => Err(ApiError::bad_request(format!(
                "more than one {key} filter specified"
            ))),
        }
    }

    /// `label=k[=v]` all hold and `label!=k[=v]` none does, for labels looked up by `get`.
    pub fn labels_match<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.get("label")
            .iter()
            .all(|spec| label_matches(spec, &get))
            && !self
                .get("label!")
                .iter()
                .any(|spec| label_matches(spec, &get))
    }
}

/// `key` (present) or `key=value` (present with that value).
pub fn label_matches<'a>(spec: &str, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    match spec.split_once('=') {
        Some((key, value)) => get(key) == Some(value),
        None => get(spec).is_some(),
    }
}

/// A time query parameter (`since`, `until`), read as [`timestamp`] reads it.
pub fn time_param(params: &[(String, String)], name: &str) -> Result<Option<f64>, ApiError> {
    super::param(params, name)
        .filter(|v| !v.is_empty())
        .map(|v| timestamp(v, now()))
        .transpose()
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A time as dockerd reads it: a Go duration before `now` (`10m`, `1h30m`), seconds since
/// the epoch (`1700000000.5`), or an RFC 3339 date or time (UTC).
pub fn timestamp(value: &str, now: f64) -> Result<f64, ApiError> {
    if let Some(d) = go_duration(value) {
        return Ok(now - d);
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return Ok(seconds);
    }
    let text = if value.len() == 10 {
        format!("{value}T00:00:00")
    } else {
        value.to_string()
    };
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "failed to parse value as time or duration: {value:?}"
            ))
        })
}

/// Go's time.ParseDuration, for positive durations: `300ms`, `1.5h`, `2h45m` (Go's
/// syntax, which humantime's does not cover: fractions, no spaces).
fn go_duration(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reads_durations_timestamps_and_dates() {
        let now = 1_700_000_000.0;
        assert_eq!(timestamp("10m", now).unwrap(), now - 600.0);
        assert_eq!(timestamp("1h30m", now).unwrap(), now - 5400.0);
        assert_eq!(timestamp("1.5h", now).unwrap(), now - 5400.0);
        assert_eq!(timestamp("1600000000", now).unwrap(), 1_600_000_000.0);
        assert_eq!(timestamp("2024-01-01", now).unwrap(), 1_704_067_200.0);
        assert_eq!(
            timestamp("2024-01-01T00:00:10Z", now).unwrap(),
            1_704_067_210.0
        );
        assert!(timestamp("yesterday", now).is_err());
    }

    #[test]
    fn filters_parse_both_forms_and_refuse_unknown_keys() {
        let known = &["label", "label!", "until"];
        let f = Filters::parse(Some(r#"{"label":["a=b"],"label!":{"c":true}}"#), known).unwrap();
        assert_eq!(f.get("label"), ["a=b"]);
        assert_eq!(f.get("label!"), ["c"]);
        assert!(Filters::parse(Some(r#"{"status":["exited"]}"#), known).is_err());
        assert!(Filters::parse(None, known)
            .unwrap()
            .time("until")
            .unwrap()
            .is_none());
        let labels = |k: &str| (k == "a").then_some("b");
        assert!(f.labels_match(labels));
        let with_c = |k: &str| match k {
            "a" => Some("b"),
            "c" => Some(""),
            _ => None,
        };
        assert!(!f.labels_match(with_c));
    }
}
