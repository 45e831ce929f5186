//! Argument conditions: the operators, ANDed conditions, and runc's split of conditions on
//! the same argument.

use libc::{AF_INET, AF_UNIX, EINVAL, EPERM, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM};
use serde_json::json;

use crate::child::{errno, run_filtered, seccomp, sys, Exit, Probe, RUNTIME_BASICS};

fn personality(persona: u64) -> i64 {
    // SAFETY: personality takes a plain integer.
    sys(unsafe { libc::syscall(libc::SYS_personality, persona) })
}

/// getpriority(which, 0): with `which` 7, 8 or 9 the kernel answers EINVAL, so EPERM can
/// only come from the filter.
fn getpriority(which: u64) -> i64 {
    // SAFETY: getpriority takes plain integers.
    sys(unsafe { libc::syscall(libc::SYS_getpriority, which, 0) })
}

/// socket(domain, kind, 0), closing what it opens; 0 on success.
fn socket(domain: i32, kind: i32) -> i64 {
    // SAFETY: socket takes plain integers; close gets the fd socket returned.
    let fd = sys(unsafe { libc::syscall(libc::SYS_socket, domain, kind, 0) });
    if fd >= 0 {
        unsafe { libc::close(fd as i32) };
        return 0;
    }
    fd
}

fn run_rule(rule: serde_json::Value, probe: impl FnOnce(&Probe)) -> Vec<i64> {
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule] }));
    let outcome = run_filtered(&filter, probe);
    assert_eq!(outcome.exit, Exit::Code(0));
    outcome.reports
}

#[test]
fn personality_allowed_only_for_arg0_zero() {
    // As the Docker profile does it: an allow list where personality needs arg0 == 0.
    let mut allowed: Vec<&str> = RUNTIME_BASICS.to_vec();
    allowed.push("getpid");
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        { "names": allowed, "action": "SCMP_ACT_ALLOW" },
        { "names": ["personality"], "action": "SCMP_ACT_ALLOW",
          "args": [{ "index": 0, "value": 0, "op": "SCMP_CMP_EQ" }] },
    ] }));
    let outcome = run_filtered(&filter, |p| {
        p.report(personality(0));
        p.report(personality(8));
        p.report(personality(0xffff_ffff));
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [0, errno(EPERM), errno(EPERM)]);
}

#[test]
fn operators_compare_as_named() {
    let cases = [
        ("SCMP_CMP_LT", [true, false, false]),
        ("SCMP_CMP_LE", [true, true, false]),
        ("SCMP_CMP_EQ", [false, true, false]),
        ("SCMP_CMP_GE", [false, true, true]),
        ("SCMP_CMP_GT", [false, false, true]),
        ("SCMP_CMP_NE", [true, false, true]),
    ];
    for (op, blocked) in cases {
        let rule = json!({ "names": ["getpriority"], "action": "SCMP_ACT_ERRNO",
                           "args": [{ "index": 0, "value": 8, "op": op }] });
        let reports = run_rule(rule, |p| {
            (7..=9).for_each(|which| p.report(getpriority(which)))
        });
        let expected = blocked.map(|b| errno(if b { EPERM } else { EINVAL }));
        assert_eq!(reports, expected, "{op} 8 against 7, 8, 9");
    }
}

#[test]
fn masked_eq_masks_with_value_and_compares_with_value_two() {
    let cloexec = SOCK_CLOEXEC as u64;
    let with_cloexec = json!({ "names": ["socket"], "action": "SCMP_ACT_ERRNO",
        "args": [{ "index": 1, "value": cloexec, "valueTwo": cloexec, "op": "SCMP_CMP_MASKED_EQ" }] });
    let reports = run_rule(with_cloexec, |p| {
        p.report(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
        p.report(socket(AF_UNIX, SOCK_STREAM));
    });
    assert_eq!(reports, [errno(EPERM), 0]);

    // Without valueTwo the masked bits must be 0, as in the Docker profile's clone rule.
    let without_cloexec = json!({ "names": ["socket"], "action": "SCMP_ACT_ERRNO",
        "args": [{ "index": 1, "value": cloexec, "op": "SCMP_CMP_MASKED_EQ" }] });
    let reports = run_rule(without_cloexec, |p| {
        p.report(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
        p.report(socket(AF_UNIX, SOCK_STREAM));
    });
    assert_eq!(reports, [0, errno(EPERM)]);
}

#[test]
fn conditions_on_different_arguments_all_must_hold() {
    let rule = json!({ "names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
        { "index": 0, "value": AF_UNIX, "op": "SCMP_CMP_EQ" },
        { "index": 1, "value": SOCK_DGRAM, "op": "SCMP_CMP_EQ" },
    ] });
    let reports = run_rule(rule, |p| {
        p.report(socket(AF_UNIX, SOCK_DGRAM));
        p.report(socket(AF_UNIX, SOCK_STREAM));
        p.report(socket(AF_INET, SOCK_DGRAM));
    });
    assert_eq!(reports, [errno(EPERM), 0, 0]);
}

#[test]
fn conditions_on_the_same_argument_become_separate_rules() {
    // Both cannot hold at once; split like runc, each value is blocked on its own.
    let rule = json!({ "names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "args": [
        { "index": 0, "value": 7, "op": "SCMP_CMP_EQ" },
        { "index": 0, "value": 9, "op": "SCMP_CMP_EQ" },
    ] });
    let reports = run_rule(rule, |p| {
        (7..=9).for_each(|which| p.report(getpriority(which)))
    });
    assert_eq!(reports, [errno(EPERM), errno(EINVAL), errno(EPERM)]);
}
