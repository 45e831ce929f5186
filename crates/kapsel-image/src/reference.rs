//! Image references, normalised as Docker does (distribution's reference grammar):
//! `busybox` is `docker.io/library/busybox:latest`, `localhost:5000/a/b:t` keeps its
//! registry, and `name@sha256:…` pins a digest.

use std::fmt;

use crate::error::{ImageError, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const OFFICIAL_PREFIX: &str = "library/";

/// A fully qualified reference: registry domain, repository path, and a tag and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises; a reference without tag or digest gets `latest`.
    pub fn parse(text: &str) -> Result<Reference> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(validate_digest(d).map_err(|e| invalid(&e))?)),
            None => (text, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(t) = tag {
            validate_tag(t).map_err(|e| invalid(&e))?;
        }
        let (domain, path) = split_domain(name);
        validate_path(&path).map_err(|e| invalid(&e))?;
        if domain.is_empty() || domain.len() + path.len() + 1 > 255 {
            return Err(invalid("the name must be 1 to 255 characters"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox`: the repository without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form Docker shows: `busybox:latest`, `user/app:1`, `localhost:5000/a:b`.
    pub fn familiar(&self) -> String {
        let mut name = self.familiar_repository();
        if let Some(t) = &self.tag {
            name = format!("{name}:{t}");
        }
        if let Some(d) = &self.digest {
            name = format!("{name}@{d}");
        }
        name
    }

    /// `busybox`, `user/app`, `localhost:5000/a`: the repository as Docker shows it.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        self.path
            .strip_prefix(OFFICIAL_PREFIX)
            .unwrap_or(&self.path)
            .to_string()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
fn split_tag(text: &str) -> (&str, Option<&str>) {
    let slash = text.rfind('/').map_or(0, |i| i + 1);
    match text[slash..].rfind(':') {
        Some(i) => (&text[..slash + i], Some(&text[slash + i + 1..])),
        None => (text, None),
    }
}

/// The first component is a registry when it looks like a host: it has a '.' or a ':',
/// or is `localhost`; otherwise the image lives on Docker Hub (official images under
/// `library/`).
fn split_domain(name: &str) -> (String, String) {
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) if f.contains('.') || f.contains(':') || f == "localhost" => (f, r),
        _ => (DEFAULT_DOMAIN, name),
    };
    let domain = if first == "index.docker.io" {
        DEFAULT_DOMAIN
    } else {
        first
    };
    let path = if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        format!("{OFFICIAL_PREFIX}{rest}")
    } else {
        rest.to_string()
    };
    (domain.to_string(), path)
}

/// Path components: lowercase alphanumerics separated by '.', '_', '__' or dashes.
fn validate_path(path: &str) -> std::result::Result<(), String> {
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(format!(
                "repository name component {component:?} must be lowercase letters and digits, \
                 separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    // Between alphanumeric runs: '.', '_', '__', or any number of '-'.
    c.split(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-'))
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let ok_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok_first && ok_rest && tag.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ))
    }
}

fn validate_digest(d: &str) -> std::result::Result<String, String> {
    match d.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(d.to_string())
        }
        _ => Err(format!(
            "digest {d:?} must be sha256: and 64 lowercase hex digits"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_as_docker_does() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("quay.io/org/img:v1.2_3"), "quay.io/org/img:v1.2_3");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn familiar_names_are_short() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("user/app:2"), "user/app:2");
        assert_eq!(f("localhost:5000/a"), "localhost:5000/a:latest");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "bus box",
            "a//b",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "-lead",
            "trail-/x",
            "a..b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Reference::parse("a__b/c-d--e.f").is_ok());
    }
}
