//! What `build` refuses, and what it accepts that libseccomp alone would not.

use kapsel_seccomp::{build, SeccompError};
use libseccomp::{check_api, ScmpVersion};
use serde_json::json;

use crate::child::seccomp;

fn build_err(json: serde_json::Value) -> SeccompError {
    build(&seccomp(json)).expect_err("build must fail")
}

fn one_rule(rule: serde_json::Value) -> serde_json::Value {
    json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule] })
}

#[test]
fn errno_ret_must_fit_16_bits() {
    let err = build_err(one_rule(
        json!({ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000 }),
    ));
    assert!(matches!(
        err,
        SeccompError::ErrnoOutOfRange { value: 70000, .. }
    ));
    assert!(err.to_string().contains("syscalls[0] (mkdir)"), "{err}");
}

#[test]
fn errno_ret_only_on_errno_and_trace() {
    let err = build_err(one_rule(
        json!({ "names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS", "errnoRet": 1 }),
    ));
    assert!(
        matches!(err, SeccompError::ErrnoNotSupported { .. }),
        "{err}"
    );
    let err = build_err(json!({ "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1 }));
    assert!(err.to_string().contains("defaultAction"), "{err}");
    let trace = one_rule(json!({ "names": ["mkdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 5 }));
    build(&seccomp(trace)).expect("errnoRet is TRACE's message");
}

#[test]
fn arg_index_is_0_to_5() {
    let err = build_err(one_rule(
        json!({ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
        "args": [{ "index": 6, "value": 0, "op": "SCMP_CMP_EQ" }] }),
    ));
    assert!(
        matches!(err, SeccompError::ArgIndex { index: 6, .. }),
        "{err}"
    );
}

#[test]
fn names_must_be_present_and_non_empty() {
    let err = build_err(one_rule(json!({ "names": [], "action": "SCMP_ACT_ERRNO" })));
    assert!(matches!(err, SeccompError::NoNames { .. }), "{err}");
    let err = build_err(one_rule(
        json!({ "names": ["mkdir", ""], "action": "SCMP_ACT_ERRNO" }),
    ));
    assert!(matches!(err, SeccompError::EmptyName { .. }), "{err}");
}

#[test]
fn notify_is_refused_where_it_would_hang_the_container() {
    let err =
        build_err(json!({ "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock" }));
    assert!(matches!(err, SeccompError::NotifyAsDefault), "{err}");
    for syscall in ["write", "sendmsg"] {
        let err = build_err(
            json!({ "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
            "syscalls": [{ "names": ["read", syscall], "action": "SCMP_ACT_NOTIFY" }] }),
        );
        assert!(matches!(err, SeccompError::NotifyForbidden { .. }), "{err}");
    }
    let err = build_err(one_rule(
        json!({ "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" }),
    ));
    assert!(
        matches!(err, SeccompError::NotifyWithoutListener { .. }),
        "{err}"
    );
}

#[test]
fn listener_metadata_needs_listener_path() {
    let err = build_err(json!({ "defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x" }));
    assert!(
        matches!(err, SeccompError::MetadataWithoutListener),
        "{err}"
    );
}

#[test]
fn rules_with_the_default_action_are_skipped() {
    // libseccomp itself refuses these; ERRNO without errnoRet is ERRNO(EPERM) = ERRNO(1).
    build(&seccomp(one_rule(
        json!({ "names": ["getpid"], "action": "SCMP_ACT_ALLOW" }),
    )))
    .unwrap();
    build(&seccomp(
        json!({ "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "syscalls": [{ "names": ["getpid"], "action": "SCMP_ACT_ERRNO" }] }),
    ))
    .unwrap();
}

#[test]
fn wait_killable_recv_needs_libseccomp_2_6() {
    let config = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"] }));
    if check_api(7, ScmpVersion::from((2, 6, 0))).unwrap() {
        build(&config).unwrap();
    } else {
        let err = build(&config).unwrap_err();
        assert!(matches!(err, SeccompError::UnsupportedFlag { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
            "{err}"
        );
    }
}
