//! Dockerfile instructions applied to an image's `config` section, as `docker commit
//! --change` and `docker import --change` apply them (CMD, ENTRYPOINT, ENV, EXPOSE,
//! HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR, in Dockerfile syntax:
//! JSON or shell form, quotes, `$VAR` / `${VAR:-default}` substitution from the config's
//! Env), and Docker's merge of a committed container's config with the config it was
//! created from.
//!
//! Configs are the JSON objects Docker writes (`{"Cmd": [...], "Env": [...], ...}`).

use serde_json::{json, Map, Value};

use crate::error::{ImageError, Result};

/// The keys of an image's `config` section (Docker's `container.Config` fields that
/// images carry; the rest of a container's config is runtime state).
pub const IMAGE_CONFIG_KEYS: &[&str] = &[
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Volumes",
    "WorkingDir",
    "Labels",
    "OnBuild",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

/// Applies the instructions in `changes` (each one or more lines) to `config`, in order.
pub fn apply(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    let text = changes.join("\n");
    let mut cmd_set = false;
    for line in logical_lines(&text) {
        let (word, rest) = split_first_word(&line);
        let rest = rest.trim();
        let bad = |reason: String| ImageError::invalid_change(&line, reason);
        match word.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), json!(command(config, rest).map_err(bad)?));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.insert(
                    "Entrypoint".into(),
                    json!(command(config, rest).map_err(bad)?),
                );
                // As in a Dockerfile: an ENTRYPOINT resets a CMD not given with it.
                if !cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            "ENV" => {
                for (key, value) in key_values("ENV", rest, &env_of(config)).map_err(bad)? {
                    set_env(config, &key, &value);
                }
            }
            "LABEL" => {
                let pairs = key_values("LABEL", rest, &env_of(config)).map_err(bad)?;
                let labels = object_entry(config, "Labels");
                for (key, value) in pairs {
                    labels.insert(key, Value::String(value));
                }
            }
            "EXPOSE" => {
                let words = process_words(rest, &env_of(config)).map_err(bad)?;
                if words.is_empty() {
                    return Err(bad("EXPOSE requires at least one argument".into()));
                }
                let mut ports = Vec::new();
                for word in &words {
                    ports.extend(port_specs(word).map_err(bad)?);
                }
                let exposed = object_entry(config, "ExposedPorts");
                for port in ports {
                    exposed.insert(port, json!({}));
                }
            }
            "VOLUME" => {
                let paths = match json_strings(rest) {
                    Some(list) => list,
                    None => process_words(rest, &env_of(config)).map_err(bad)?,
                };
                if paths.is_empty() {
                    return Err(bad("VOLUME requires at least one argument".into()));
                }
                let volumes = object_entry(config, "Volumes");
                for path in paths {
                    if path.trim().is_empty() {
                        return Err(bad("VOLUME specified can not be an empty string".into()));
                    }
                    volumes.insert(path, json!({}));
                }
            }
            "USER" => {
                let user = process_word(rest, &env_of(config)).map_err(bad)?;
                if user.is_empty() {
                    return Err(bad("USER requires exactly one argument".into()));
                }
                config.insert("User".into(), json!(user));
            }
            "WORKDIR" => {
                let dir = process_word(rest, &env_of(config)).map_err(bad)?;
                if dir.is_empty() {
                    return Err(bad("WORKDIR requires exactly one argument".into()));
                }
                let current = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                config.insert("WorkingDir".into(), json!(workdir(current, &dir)));
            }
            "STOPSIGNAL" => {
                let signal = process_word(rest, &env_of(config)).map_err(bad)?;
                if !valid_signal(&signal) {
                    return Err(bad(format!("Invalid signal: {signal}")));
                }
                config.insert("StopSignal".into(), json!(signal));
            }
            "ONBUILD" => {
                let (trigger, _) = split_first_word(rest);
                match trigger.to_ascii_uppercase().as_str() {
                    "" => return Err(bad("ONBUILD requires at least one argument".into())),
                    "ONBUILD" => {
                        return Err(bad(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()
                        ))
                    }
                    t @ ("FROM" | "MAINTAINER") => {
                        return Err(bad(format!("{t} isn't allowed as an ONBUILD trigger")))
                    }
                    _ => {}
                }
                let triggers = config.entry("OnBuild").or_insert_with(|| json!([]));
                if !triggers.is_array() {
                    *triggers = json!([]);
                }
                triggers.as_array_mut().expect("an array").push(json!(rest));
            }
            "HEALTHCHECK" => {
                config.insert("Healthcheck".into(), healthcheck(rest).map_err(bad)?);
            }
            _ => {
                return Err(bad(format!(
                    "{} is not a valid change command",
                    word.to_ascii_lowercase()
                )))
            }
        }
    }
    Ok(())
}

/// Docker's `merge` for `commit`: what `user` (the config being committed, after the
/// changes) leaves unset comes from `defaults` (the container's config); Env, Labels,
/// ExposedPorts and Volumes are merged key by key, `user`'s winning.
pub fn merge_defaults(user: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    for key in ["User", "WorkingDir", "StopSignal", "Shell", "StopTimeout"] {
        if empty(user.get(key)) && !empty(defaults.get(key)) {
            user.insert(key.into(), defaults[key].clone());
        }
    }
    for key in ["ExposedPorts", "Volumes", "Labels"] {
        if let Some(Value::Object(theirs)) = defaults.get(key) {
            let ours = object_entry(user, key);
            for (k, v) in theirs {
                ours.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if let Some(Value::Array(theirs)) = defaults.get("Env") {
        let mut env: Vec<Value> = match user.get("Env") {
            Some(Value::Array(ours)) => ours.clone(),
            _ => Vec::new(),
        };
        let key_of = |v: &Value| {
            v.as_str()
                .map(|s| s.split('=').next().unwrap_or("").to_string())
        };
        for var in theirs {
            if !env.iter().any(|e| key_of(e) == key_of(var)) {
                env.push(var.clone());
            }
        }
        user.insert("Env".into(), Value::Array(env));
    }
    if empty(user.get("Entrypoint")) {
        if empty(user.get("Cmd")) && !empty(defaults.get("Cmd")) {
            user.insert("Cmd".into(), defaults["Cmd"].clone());
        }
        // `null`, not `[]`: an explicitly emptied entrypoint stays empty.
        if matches!(user.get("Entrypoint"), None | Some(Value::Null))
            && !empty(defaults.get("Entrypoint"))
        {
            user.insert("Entrypoint".into(), defaults["Entrypoint"].clone());
        }
    }
    if empty(user.get("Healthcheck")) && !empty(defaults.get("Healthcheck")) {
        user.insert("Healthcheck".into(), defaults["Healthcheck"].clone());
    }
}

/// Only the keys an image config carries ([`IMAGE_CONFIG_KEYS`]), without nulls.
pub fn image_config(config: &Map<String, Value>) -> Map<String, Value> {
    IMAGE_CONFIG_KEYS
        .iter()
        .filter_map(|k| config.get(*k).map(|v| (k.to_string(), v.clone())))
        .filter(|(_, v)| !v.is_null())
        .collect()
}

/// Lines with `\` continuations joined; blank lines and comments dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim_end();
        if current.is_empty()
            && (trimmed.trim().is_empty() || trimmed.trim_start().starts_with('#'))
        {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(current.trim().to_string());
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push(current.trim().to_string());
    }
    lines
}

fn split_first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    }
}

/// A JSON array of strings (the exec form), if `text` is one.
fn json_strings(text: &str) -> Option<Vec<String>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// CMD/ENTRYPOINT: the exec form as is, the shell form run by the config's `Shell` (by
/// default `/bin/sh -c`).
fn command(config: &Map<String, Value>, rest: &str) -> std::result::Result<Vec<String>, String> {
    if let Some(list) = json_strings(rest) {
        return Ok(list);
    }
    if rest.is_empty() {
        return Err("requires at least one argument".into());
    }
    let mut shell: Vec<String> = config
        .get("Shell")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .filter(|s: &Vec<String>| !s.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    shell.push(rest.to_string());
    Ok(shell)
}

fn env_of(config: &Map<String, Value>) -> Vec<(String, String)> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect()
}

fn set_env(config: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = config.entry("Env").or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    let env = entry.as_array_mut().expect("an array");
    let var = json!(format!("{key}={value}"));
    match env
        .iter_mut()
        .find(|e| e.as_str().is_some_and(|s| s.split('=').next() == Some(key)))
    {
        Some(existing) => *existing = var,
        None => env.push(var),
    }
}

/// `config[key]` as an object, created (or replacing a null) if needed.
fn object_entry<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = config.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("an object")
}

/// ENV/LABEL arguments: `key=value ...` (quotes and substitutions in each), or the old
/// `key value with spaces`.
fn key_values(
    instruction: &str,
    rest: &str,
    env: &[(String, String)],
) -> std::result::Result<Vec<(String, String)>, String> {
    let words = raw_words(rest)?;
    let Some(first) = words.first() else {
        return Err(format!("{instruction} requires at least one argument"));
    };
    if !first.contains('=') {
        let (key, value) = split_first_word(rest);
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{instruction} must have two arguments"));
        }
        return Ok(vec![(process_word(key, env)?, process_word(value, env)?)]);
    }
    let mut pairs = Vec::new();
    let mut env = env.to_vec();
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        let key = process_word(key, &env)?;
        if key.is_empty() {
            return Err(format!("{instruction} names must not be empty"));
        }
        let value = process_word(value, &env)?;
        if instruction == "ENV" {
            env.retain(|(k, _)| *k != key);
            env.push((key.clone(), value.clone()));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Splits on whitespace outside quotes, keeping quotes and escapes for [`process_word`].
fn raw_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                word.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (_, c) => word.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {text:?}"));
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

fn process_words(text: &str, env: &[(String, String)]) -> std::result::Result<Vec<String>, String> {
    raw_words(text)?
        .iter()
        .map(|w| process_word(w, env))
        .collect()
}

/// One word with quotes removed, escapes resolved and variables substituted, as the
/// Dockerfile shell lexer does it (single quotes are literal).
fn process_word(word: &str, env: &[(String, String)]) -> std::result::Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), c) => out.push(c),
            (None, '\'') => quote = Some('\''),
            (None, '"') => quote = Some('"'),
            (Some('"'), '"') => quote = None,
            (Some('"'), '\\') => match chars.get(i + 1) {
                Some(&n @ ('"' | '\\' | '$')) => {
                    out.push(n);
                    i += 1;
                }
                _ => out.push('\\'),
            },
            (None, '\\') => {
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                    i += 1;
                }
            }
            (_, '$') => {
                let (value, used) = substitute(&chars[i + 1..], env)?;
                out.push_str(&value);
                i += used;
            }
            (_, c) => out.push(c),
        }
        i += 1;
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {word:?}"));
    }
    Ok(out)
}

/// What follows a `$`: the value and how many characters it took. `$NAME`, `${NAME}`,
/// `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`; a lone `$` stays.
fn substitute(
    chars: &[char],
    env: &[(String, String)],
) -> std::result::Result<(String, usize), String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.first() == Some(&'{') {
        let Some(close) = chars.iter().position(|&c| c == '}') else {
            return Err("missing '}' in a ${...} substitution".into());
        };
        let inner: String = chars[1..close].iter().collect();
        let name_len = inner.chars().take_while(|&c| is_name(c)).count();
        let (name, op) = inner.split_at(name_len);
        if name.is_empty() {
            return Err(format!("bad substitution ${{{inner}}}"));
        }
        let value = lookup(name);
        let result = match op {
            "" => value.unwrap_or_default(),
            _ => {
                let (colon, op) = match op.strip_prefix(':') {
                    Some(rest) => (true, rest),
                    None => (false, op),
                };
                let set = match &value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                let (kind, word) = op.split_at(op.chars().next().map_or(0, char::len_utf8));
                let word = process_word(word, env)?;
                match kind {
                    "-" => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            word
                        }
                    }
                    "+" => {
                        if set {
                            word
                        } else {
                            String::new()
                        }
                    }
                    _ => return Err(format!("unsupported substitution ${{{inner}}}")),
                }
            }
        };
        return Ok((result, close + 1));
    }
    let len = chars.iter().take_while(|&&c| is_name(c)).count();
    if len == 0 {
        return Ok(("$".into(), 0));
    }
    let name: String = chars[..len].iter().collect();
    Ok((lookup(&name).unwrap_or_default(), len))
}

/// `80`, `80/udp`, `8000-8002/tcp` as ExposedPorts keys.
fn port_specs(spec: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {p}"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if end < start {
        return Err(format!("invalid range specified for port: {ports}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Docker's `normalizeWorkdir`: an absolute directory as given, a relative one joined to
/// the current one (or `/`) and cleaned.
fn workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        return requested.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in current.split('/').chain(requested.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn valid_signal(signal: &str) -> bool {
    if let Ok(n) = signal.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    // RTMIN+n / RTMAX-n
    let rt = |prefix: &str, sep: char| {
        name.strip_prefix(prefix).is_some_and(|r| {
            r.is_empty()
                || r.strip_prefix(sep)
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n <= 30)
        })
    };
    rt("RTMIN", '+') || rt("RTMAX", '-')
}

/// `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
/// [--retries=N] CMD ...` or `HEALTHCHECK NONE`.
fn healthcheck(rest: &str) -> std::result::Result<Value, String> {
    let mut check = Map::new();
    let mut text = rest.trim_start();
    while let Some(flag) = text.strip_prefix("--") {
        let (word, tail) = split_first_word(flag);
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| format!("flag --{word} needs a value (--{word}=...)"))?;
        match name {
            "interval" | "timeout" | "start-period" | "start-interval" => {
                let key = match name {
                    "interval" => "Interval",
                    "timeout" => "Timeout",
                    "start-period" => "StartPeriod",
                    _ => "StartInterval",
                };
                check.insert(key.into(), json!(go_duration(value)?));
            }
            "retries" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("invalid --retries {value:?}"))?;
                if n < 0 {
                    return Err("--retries cannot be negative".into());
                }
                check.insert("Retries".into(), json!(n));
            }
            _ => return Err(format!("unknown flag: --{name}")),
        }
        text = tail.trim_start();
    }
    let (kind, cmd) = split_first_word(text);
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !check.is_empty() || !cmd.trim().is_empty() {
                return Err("HEALTHCHECK NONE takes no other arguments".into());
            }
            Ok(json!({"Test": ["NONE"]}))
        }
        "CMD" => {
            let cmd = cmd.trim();
            let test = match json_strings(cmd) {
                Some(args) => {
                    let mut test = vec!["CMD".to_string()];
                    test.extend(args);
                    test
                }
                None if cmd.is_empty() => {
                    return Err("missing command after HEALTHCHECK CMD".into())
                }
                None => vec!["CMD-SHELL".to_string(), cmd.to_string()],
            };
            check.insert("Test".into(), json!(test));
            Ok(Value::Object(check))
        }
        other => Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
    }
}

/// A Go duration (`30s`, `1m30s`, `1.5h`, `500ms`) in nanoseconds.
fn go_duration(text: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid duration {text:?}");
    let mut rest = text;
    let mut total = 0f64;
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(base: Value, changes: &[&str]) -> Result<Map<String, Value>> {
        let mut config = base.as_object().cloned().unwrap_or_default();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply(&mut config, &changes)?;
        Ok(config)
    }

    #[test]
    fn cmd_and_entrypoint_take_json_or_shell_form() {
        let c = applied(json!({}), &[r#"CMD ["cat", "/greeting"]"#]).unwrap();
        assert_eq!(c["Cmd"], json!(["cat", "/greeting"]));
        let c = applied(json!({}), &["CMD echo $HOME"]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
        let c = applied(json!({"Cmd": ["sh"]}), &[r#"ENTRYPOINT ["top"]"#]).unwrap();
        assert_eq!(c["Entrypoint"], json!(["top"]));
        assert_eq!(c["Cmd"], Value::Null, "ENTRYPOINT resets CMD");
        let c = applied(json!({}), &["CMD [\"-b\"]", "ENTRYPOINT [\"top\"]"]).unwrap();
        assert_eq!(c["Cmd"], json!(["-b"]), "unless CMD came with it");
    }

    #[test]
    fn env_label_expose_volume_user_workdir_stopsignal() {
        let c = applied(
            json!({"Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv"}),
            &[
                "ENV A=2 B=\"two words\" C=$PATH:/sbin",
                "ENV D old style value",
                "LABEL version=1.0 \"com.example.name\"='my app'",
                "EXPOSE 80 53/udp 8000-8001",
                "VOLUME [\"/data\", \"/logs\"]",
                "VOLUME /cache",
                "USER nobody:nogroup",
                "WORKDIR app",
                "STOPSIGNAL SIGINT",
                "ONBUILD RUN echo hi",
            ],
        )
        .unwrap();
        assert_eq!(
            c["Env"],
            json!([
                "PATH=/bin",
                "A=2",
                "B=two words",
                "C=/bin:/sbin",
                "D=old style value"
            ])
        );
        assert_eq!(
            c["Labels"],
            json!({"version": "1.0", "com.example.name": "my app"})
        );
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(
            c["Volumes"],
            json!({"/data": {}, "/logs": {}, "/cache": {}})
        );
        assert_eq!(c["User"], json!("nobody:nogroup"));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));
    }

    #[test]
    fn substitutions_follow_the_dockerfile_rules() {
        let env = vec![
            ("A".to_string(), "x".to_string()),
            ("E".into(), String::new()),
        ];
        let p = |w: &str| process_word(w, &env).unwrap();
        assert_eq!(p("${A}y"), "xy");
        assert_eq!(p("${B:-dflt}"), "dflt");
        assert_eq!(p("${E:-dflt}"), "dflt");
        assert_eq!(p("${E-dflt}"), "");
        assert_eq!(p("${A:+set}"), "set");
        assert_eq!(p("'$A'"), "$A");
        assert_eq!(p("\"$A \\$A\""), "x $A");
        assert_eq!(p("a\\ b"), "a b");
        assert_eq!(p("cost$"), "cost$");
    }

    #[test]
    fn invalid_changes_are_refused_with_dockers_words() {
        let e = applied(json!({}), &["RUN echo hi"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("run is not a valid change command"), "{e}");
        assert!(applied(json!({}), &["EXPOSE 80/xyz"]).is_err());
        assert!(applied(json!({}), &["STOPSIGNAL SIGNOPE"]).is_err());
        assert!(applied(json!({}), &["ENV"]).is_err());
        assert!(applied(json!({}), &["ENV A=\"unterminated"]).is_err());
        let c = applied(
            json!({}),
            &["HEALTHCHECK --interval=5s --retries=3 CMD curl -f x"],
        )
        .unwrap();
        assert_eq!(
            c["Healthcheck"],
            json!({"Interval": 5_000_000_000i64, "Retries": 3, "Test": ["CMD-SHELL", "curl -f x"]})
        );
    }

    #[test]
    fn continuation_lines_join() {
        let c = applied(json!({}), &["ENV A=1 \\\n  B=2"]).unwrap();
        assert_eq!(c["Env"], json!(["A=1", "B=2"]));
    }

    #[test]
    fn merge_fills_what_the_commit_config_leaves_unset() {
        let mut user = json!({"Cmd": ["cat", "/x"], "Env": ["A=user"], "Labels": {"l": "user"}})
            .as_object()
            .cloned()
            .unwrap();
        let defaults = json!({
            "Cmd": ["sh"], "Entrypoint": null, "Env": ["PATH=/bin", "A=container"],
            "Labels": {"l": "container", "m": "container"}, "WorkingDir": "/w",
            "ExposedPorts": {"80/tcp": {}}
        });
        merge_defaults(&mut user, defaults.as_object().unwrap());
        assert_eq!(user["Cmd"], json!(["cat", "/x"]));
        assert_eq!(user["Env"], json!(["A=user", "PATH=/bin"]));
        assert_eq!(user["Labels"], json!({"l": "user", "m": "container"}));
        assert_eq!(user["WorkingDir"], json!("/w"));
        assert_eq!(user["ExposedPorts"], json!({"80/tcp": {}}));
    }
}
