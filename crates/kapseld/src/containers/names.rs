//! Container IDs and names: generated as Docker does (64 hex digits; `adjective_noun`
//! names), validated with Docker's rules.

use std::io::Read;

use super::ContainerError;

/// 32 random bytes as hex. The first 12 digits (the short ID) are never all decimal,
/// as in Docker, so a short ID cannot be mistaken for a number.
pub fn new_id(taken: impl Fn(&str) -> bool) -> String {
    loop {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("reading /dev/urandom");
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let short = &id[..12];
        if !short.bytes().all(|b| b.is_ascii_digit()) && !taken(short) {
            return id;
        }
    }
}

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "cosy", "crisp", "daring", "eager",
    "fair", "fast", "fond", "gentle", "glad", "happy", "keen", "kind", "lively", "lucid", "merry",
    "nimble", "noble", "proud", "quick", "quiet", "sharp", "steady", "sunny", "swift", "tidy",
    "vivid", "warm", "wise", "witty", "zesty",
];

const NOUNS: &[&str] = &[
    "anchor", "badger", "beacon", "capsule", "comet", "cedar", "dolphin", "falcon", "fjord",
    "glacier", "harbor", "heron", "island", "kestrel", "lagoon", "lantern", "maple", "meadow",
    "nebula", "orbit", "otter", "pebble", "pine", "quartz", "raven", "reef", "river", "sparrow",
    "summit", "tundra", "walrus", "willow",
];

/// A free `adjective_noun` name; a digit is appended when the pairs are taken.
pub fn generate_name(taken: impl Fn(&str) -> bool) -> String {
    let mut seed = [0u8; 2];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    for attempt in 0.. {
        let a = ADJECTIVES[(seed[0] as usize + attempt) % ADJECTIVES.len()];
        let n = NOUNS[(seed[1] as usize + attempt / ADJECTIVES.len()) % NOUNS.len()];
        let name = if attempt < ADJECTIVES.len() * NOUNS.len() {
            format!("{a}_{n}")
        } else {
            format!("{a}_{n}{attempt}")
        };
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop only ends by returning")
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with an optional leading '/'.
pub fn validate_name(name: &str) -> Result<String, ContainerError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        bare.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(bare.to_string())
    } else {
        Err(ContainerError::InvalidName {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(validate_name("/web-1").unwrap(), "web-1");
        assert_eq!(validate_name("a.b_c").unwrap(), "a.b_c");
        for bad in ["", "a", "-x", "/", "a b", "x/y", "é1"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_hex_with_a_non_numeric_short_form() {
        let id = new_id(|_| false);
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!id[..12].bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn generated_names_avoid_taken_ones() {
        let first = generate_name(|_| false);
        let second = generate_name(|n| n == first);
        assert_ne!(first, second);
        assert!(validate_name(&second).is_ok());
    }
}
