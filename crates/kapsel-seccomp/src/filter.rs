//! config.json's `linux.seccomp` turned into a libseccomp filter, following the runtime spec
//! (config-linux.md#seccomp) and, where the spec is silent, runc.

use libseccomp::{
    check_api, get_api, ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext,
    ScmpSyscall, ScmpVersion,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::error::{LibseccompError, SeccompError};

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// Above this many rules the filter is compiled as a binary tree instead of a list. runc's
/// threshold: libseccomp <= 2.5.4 misbehaves with a tree of no rules, and a tree node holds
/// four syscalls, so small filters gain nothing.
const BINARY_TREE_MIN_RULES: usize = 32;

/// Syscalls that must not be SCMP_ACT_NOTIFY. After the filter is loaded the container's init
/// still has to hand the notify fd to the runtime, which passes it on to the agent: until
/// then no agent answers, so notifying on the syscalls that carry the fd would hang the
/// container. runc rejects `write` for this reason; `sendmsg` carries the fd itself.
const NOTIFY_FORBIDDEN: &[&str] = &["write", "sendmsg"];

/// A filter built from config.json, not yet in the kernel.
#[derive(Debug)]
pub struct Filter {
    ctx: ScmpFilterContext,
    notifies: bool,
}

impl Filter {
    /// The BPF program this filter compiles to, ready to load without libseccomp.
    pub fn compile(&self) -> Result<crate::Program, SeccompError> {
        crate::Program::compile(&self.ctx, self.notifies)
    }
}

/// Builds the filter `seccomp` describes.
pub fn build(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(SeccompError::MetadataWithoutListener);
    }
    let default = default_action(seccomp)?;
    let mut ctx = ScmpFilterContext::new(default).map_err(libseccomp("creating the filter"))?;
    // no_new_privs is the runtime's decision (process.noNewPrivileges); without it the
    // caller must load the filter while it still holds CAP_SYS_ADMIN.
    ctx.set_ctl_nnp(false)
        .map_err(libseccomp("leaving no_new_privs to the runtime"))?;
    // A syscall made through an ABI the filter does not cover (e.g. int 0x80 when only
    // x86_64 is listed) would bypass every rule. libseccomp 2.5 kills only the calling
    // thread, which can leave a half-dead process behind; kill the whole process instead.
    ctx.set_act_badarch(ScmpAction::KillProcess)
        .map_err(libseccomp("setting the bad-architecture action"))?;
    add_architectures(&mut ctx, seccomp.architectures().as_deref().unwrap_or(&[]))?;
    apply_flags(&mut ctx, seccomp.flags().as_deref())?;
    let added = add_rules(&mut ctx, seccomp, default)?;
    if added.count > BINARY_TREE_MIN_RULES {
        ctx.set_ctl_optimize(2)
            .map_err(libseccomp("enabling the binary-tree optimization"))?;
    }
    Ok(Filter {
        ctx,
        notifies: added.notifies,
    })
}

fn default_action(seccomp: &LinuxSeccomp) -> Result<ScmpAction, SeccompError> {
    let action = scmp_action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    if action == ScmpAction::Notify {
        return Err(SeccompError::NotifyAsDefault);
    }
    Ok(action)
}

/// The libseccomp action for a config action. `errno_ret` is the errno of SCMP_ACT_ERRNO
/// and the message of SCMP_ACT_TRACE (EPERM when absent); the spec makes it an error on any
/// other action.
fn scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<ScmpAction, SeccompError> {
    use LinuxSeccompAction as A;
    let takes_errno = matches!(action, A::ScmpActErrno | A::ScmpActTrace);
    let ret = match errno_ret {
        Some(_) if !takes_errno => {
            return Err(SeccompError::ErrnoNotSupported {
                field: field.to_owned(),
                action,
            })
        }
        Some(value) => u16::try_from(value).map_err(|_| SeccompError::ErrnoOutOfRange {
            field: field.to_owned(),
            value,
        })?,
        None => Errno::EPERM as u16,
    };
    Ok(match action {
        // SCMP_ACT_KILL predates KILL_PROCESS and always meant the thread.
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(i32::from(ret)),
        A::ScmpActTrace => ScmpAction::Trace(ret),
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => ScmpAction::Notify,
    })
}

/// Adds the listed ABIs; the native one is always present already.
fn add_architectures(ctx: &mut ScmpFilterContext, arches: &[Arch]) -> Result<(), SeccompError> {
    for arch in arches {
        ctx.add_arch(scmp_arch(*arch))
            .map_err(libseccomp(format!("adding architecture {arch}")))?;
    }
    Ok(())
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Sets the listed flags. Like runc, a config without a `flags` field at all gets
/// SPEC_ALLOW when this libseccomp and kernel support it: otherwise loading a filter turns
/// on the Speculative Store Bypass mitigation for the container, a large slowdown that the
/// host's own mitigation policy did not ask for. An explicit list, even empty, is taken as is.
fn apply_flags(
    ctx: &mut ScmpFilterContext,
    flags: Option<&[LinuxSeccompFilterFlag]>,
) -> Result<(), SeccompError> {
    let Some(flags) = flags else {
        if spec_allow_supported() {
            set_flag(ctx, LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow)?;
        }
        return Ok(());
    };
    flags.iter().try_for_each(|flag| set_flag(ctx, *flag))
}

/// libseccomp reaches API level 4 only when the kernel accepts SPEC_ALLOW.
fn spec_allow_supported() -> bool {
    check_api(4, ScmpVersion::from((2, 5, 0))).unwrap_or(false)
}

/// libseccomp refuses a flag that it or the kernel does not support (WAIT_KILLABLE_RECV
/// needs libseccomp 2.6); the error says so and the flag must go.
fn set_flag(ctx: &mut ScmpFilterContext, flag: LinuxSeccompFilterFlag) -> Result<(), SeccompError> {
    use LinuxSeccompFilterFlag as F;
    let result = match flag {
        F::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
        F::SeccompFilterFlagLog => ctx.set_ctl_log(true),
        F::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        F::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
    };
    result
        .map(drop)
        .map_err(|source| SeccompError::UnsupportedFlag { flag, source })
}

/// What adding config.json's rules did.
struct Added {
    /// libseccomp rules added.
    count: usize,
    /// Whether any added rule is SCMP_ACT_NOTIFY, so that loading returns a notify fd.
    notifies: bool,
}

fn add_rules(
    ctx: &mut ScmpFilterContext,
    seccomp: &LinuxSeccomp,
    default: ScmpAction,
) -> Result<Added, SeccompError> {
    let mut added = Added {
        count: 0,
        notifies: false,
    };
    for (index, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = rule_field(index, rule);
        check_names(rule, &field)?;
        let action = scmp_action(rule.action(), rule.errno_ret(), &field)?;
        if action == ScmpAction::Notify {
            check_notify(seccomp, rule, &field)?;
        }
        let groups = condition_groups(rule, &field)?;
        // libseccomp rejects a rule with the default action; it would change nothing.
        if action == default {
            continue;
        }
        let count = add_rule(ctx, rule.names(), action, &groups)?;
        added.count += count;
        added.notifies |= action == ScmpAction::Notify && count > 0;
    }
    Ok(added)
}

/// How errors point at a rule: its position and first name.
fn rule_field(index: usize, rule: &LinuxSyscall) -> String {
    match rule.names().as_slice() {
        [] => format!("linux.seccomp.syscalls[{index}]"),
        [name] => format!("linux.seccomp.syscalls[{index}] ({name})"),
        [name, ..] => format!("linux.seccomp.syscalls[{index}] ({name}, ...)"),
    }
}

fn check_names(rule: &LinuxSyscall, field: &str) -> Result<(), SeccompError> {
    if rule.names().is_empty() {
        return Err(SeccompError::NoNames {
            field: field.to_owned(),
        });
    }
    if rule.names().iter().any(String::is_empty) {
        return Err(SeccompError::EmptyName {
            field: field.to_owned(),
        });
    }
    Ok(())
}

fn check_notify(
    seccomp: &LinuxSeccomp,
    rule: &LinuxSyscall,
    field: &str,
) -> Result<(), SeccompError> {
    if let Some(name) = rule
        .names()
        .iter()
        .find(|name| NOTIFY_FORBIDDEN.contains(&name.as_str()))
    {
        return Err(SeccompError::NotifyForbidden {
            field: field.to_owned(),
            syscall: name.clone(),
        });
    }
    // Checked now rather than at load: once loaded, a filter without its notify fd would
    // leave the container blocked on the first notified syscall.
    if !check_api(6, ScmpVersion::from((2, 5, 0))).unwrap_or(false) {
        return Err(SeccompError::NotifyUnsupported {
            field: field.to_owned(),
            api_level: get_api(),
        });
    }
    if seccomp.listener_path().is_none() {
        return Err(SeccompError::NotifyWithoutListener {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// The rule's argument comparisons, grouped into libseccomp rules. The comparisons of one
/// rule must all hold (AND), but libseccomp refuses two comparisons of the same argument in
/// one rule; like runc, such a rule then becomes one rule per comparison.
fn condition_groups(
    rule: &LinuxSyscall,
    field: &str,
) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let args = rule.args().as_deref().unwrap_or(&[]);
    let conditions = args
        .iter()
        .map(|arg| condition(arg, field))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = [false; MAX_ARGS];
    let repeats_an_index = args
        .iter()
        .any(|arg| std::mem::replace(&mut seen[arg.index()], true));
    Ok(if repeats_an_index {
        conditions.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conditions]
    })
}

/// One comparison. For SCMP_CMP_MASKED_EQ `value` is the mask and `valueTwo` the value the
/// masked argument must equal; the other operators compare with `value` alone.
fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare, SeccompError> {
    use LinuxSeccompOperator as O;
    let index = u32::try_from(arg.index())
        .ok()
        .filter(|&index| (index as usize) < MAX_ARGS)
        .ok_or_else(|| SeccompError::ArgIndex {
            field: field.to_owned(),
            index: arg.index(),
        })?;
    let (op, datum) = match arg.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        O::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// Adds one rule per name and condition group; returns how many were added.
fn add_rule(
    ctx: &mut ScmpFilterContext,
    names: &[String],
    action: ScmpAction,
    groups: &[Vec<ScmpArgCompare>],
) -> Result<usize, SeccompError> {
    let mut count = 0;
    for name in names {
        // Profiles name syscalls newer than this libseccomp (or kernel) knows. Like runc,
        // a name libseccomp cannot resolve is skipped, whatever the action.
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            continue;
        };
        for conditions in groups {
            ctx.add_rule_conditional(action, syscall, conditions)
                .map_err(libseccomp(format!("adding the rule for syscall {name}")))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Wraps a libseccomp error with what was being done.
fn libseccomp(what: impl Into<String>) -> impl FnOnce(LibseccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Libseccomp { what, source }
}
