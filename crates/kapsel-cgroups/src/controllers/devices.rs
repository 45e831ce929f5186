//! Device access rules: devices.allow/deny on v1, an eBPF program on v2 (see `bpf`).

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::cgroup::Files;
use crate::controllers::bpf;
use crate::error::{CgroupError, Result};
use crate::fs;

/// Access bits as the kernel's BPF device context encodes them.
pub(crate) const ACC_MKNOD: u8 = 1;
pub(crate) const ACC_READ: u8 = 2;
pub(crate) const ACC_WRITE: u8 = 4;

/// Device types as the kernel's BPF device context encodes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Block = 1,
    Char = 2,
}

/// Rules applied in order, as config.json lists them (the runtime passes the full list,
/// starting with deny-all).
pub(crate) fn apply(f: Files, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    match f {
        Files::V1(dir) => apply_v1(dir, rules),
        Files::V2(dir) => bpf::attach_device_filter(dir, &Policy::from_rules(rules)?),
    }
}

/// The v1 kernel keeps the rule state itself: each rule is one write, in order.
fn apply_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    for rule in rules {
        let Some(line) = v1_line(rule)? else {
            continue;
        };
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        fs::write(&dir.join(file), &line)?;
    }
    Ok(())
}

/// "c 1:3 rwm", or "a" for all devices. `None` for FIFO rules: the device controller does
/// not police FIFOs.
fn v1_line(rule: &LinuxDeviceCgroup) -> Result<Option<String>> {
    let typ = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => return Ok(Some("a".to_string())),
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Ok(None),
    };
    let num = |n: Option<i64>| {
        n.filter(|&n| n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = access_string(rule)?;
    Ok(Some(format!(
        "{typ} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    )))
}

/// The rule's access, checked: only r, w and m; unset or empty means all three.
fn access_string(rule: &LinuxDeviceCgroup) -> Result<String> {
    let access = rule.access().as_deref().unwrap_or("");
    if access.chars().any(|c| !"rwm".contains(c)) {
        return Err(CgroupError::InvalidValue {
            what: format!("device rule {rule}"),
            why: format!("access {access:?} may only contain r, w and m"),
        });
    }
    Ok(if access.is_empty() { "rwm" } else { access }.to_string())
}

fn access_bits(rule: &LinuxDeviceCgroup) -> Result<u8> {
    let bits = access_string(rule)?.chars().fold(0, |b, c| {
        b | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => ACC_MKNOD,
        }
    });
    Ok(bits)
}

/// An exception to the default: the listed access to the matching devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exception {
    pub kind: Kind,
    /// `None` matches any number.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

/// The outcome of a rule list with v1 semantics, which the v2 program then implements: a
/// default (allow or deny everything) with exceptions that deny or allow the listed access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub default_allow: bool,
    pub exceptions: Vec<Exception>,
}

impl Policy {
    /// Replays the rules as the v1 kernel does: "a" rules reset the default and drop every
    /// exception; a rule against the default adds access to the exception for the same
    /// device; a rule agreeing with the default takes access away from it.
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<Policy> {
        // A new cgroup starts with its parent's policy; the root allows everything.
        let mut policy = Policy {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for rule in rules {
            let kind = match rule.typ().unwrap_or_default() {
                LinuxDeviceType::A => {
                    policy.default_allow = rule.allow();
                    policy.exceptions.clear();
                    continue;
                }
                LinuxDeviceType::B => Kind::Block,
                LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
                LinuxDeviceType::P => continue,
            };
            let num = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
            let ex = Exception {
                kind,
                major: num(rule.major()),
                minor: num(rule.minor()),
                access: access_bits(rule)?,
            };
            policy.update(ex, rule.allow() != policy.default_allow);
        }
        Ok(policy)
    }

    fn update(&mut self, ex: Exception, add: bool) {
        let same = |e: &Exception| (e.kind, e.major, e.minor) == (ex.kind, ex.major, ex.minor);
        match (self.exceptions.iter_mut().find(|e| same(e)), add) {
            (Some(e), true) => e.access |= ex.access,
            (Some(e), false) => e.access &= !ex.access,
            (None, true) => self.exceptions.push(ex),
            (None, false) => {}
        }
        self.exceptions.retain(|e| e.access != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .major(major)
            .minor(minor)
            .access(acc)
            .build()
            .unwrap()
    }

    fn deny_all() -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap()
    }

    #[test]
    fn v1_lines() {
        assert_eq!(v1_line(&deny_all()).unwrap().unwrap(), "a");
        let null = rule(true, LinuxDeviceType::C, 1, 3, "rwm");
        assert_eq!(v1_line(&null).unwrap().unwrap(), "c 1:3 rwm");
        let any = rule(true, LinuxDeviceType::B, -1, -1, "m");
        assert_eq!(v1_line(&any).unwrap().unwrap(), "b *:* m");
        assert!(v1_line(&rule(true, LinuxDeviceType::C, 1, 3, "rx")).is_err());
    }

    #[test]
    fn policy_replays_v1_semantics() {
        let rules = [
            rule(true, LinuxDeviceType::C, 9, 9, "rwm"),
            deny_all(),
            rule(true, LinuxDeviceType::C, 1, 3, "r"),
            rule(true, LinuxDeviceType::C, 1, 3, "w"),
            rule(true, LinuxDeviceType::C, 1, 5, "rwm"),
            rule(false, LinuxDeviceType::C, 1, 5, "w"),
            rule(false, LinuxDeviceType::C, 1, 7, "rwm"),
        ];
        let p = Policy::from_rules(&rules).unwrap();
        assert!(!p.default_allow);
        let access: Vec<(Option<u32>, u8)> =
            p.exceptions.iter().map(|e| (e.minor, e.access)).collect();
        assert_eq!(
            access,
            [
                (Some(3), ACC_READ | ACC_WRITE),
                (Some(5), ACC_READ | ACC_MKNOD)
            ]
        );
    }
}
