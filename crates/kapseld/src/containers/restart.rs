//! Restart policies as Docker applies them: `no`, `always`, `unless-stopped` and
//! `on-failure[:N]`, with a delay that doubles from 100 ms on each quick restart (up to a
//! minute) and starts over once a run lasted 10 seconds.

use std::time::Duration;

use super::record::RestartPolicy;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long counts as a success for the back-off.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// Whether a container that exited with `exit_code` is started again.
pub fn should_restart(
    policy: &RestartPolicy,
    exit_code: i64,
    stopped_by_user: bool,
    restart_count: u64,
) -> bool {
    if stopped_by_user {
        return false;
    }
    match policy.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            exit_code != 0
                && (policy.maximum_retry_count <= 0
                    || restart_count < policy.maximum_retry_count as u64)
        }
        _ => false,
    }
}

/// Whether the daemon starts the container when it starts (it was running when the
/// daemon went away, or exited and its policy says it should run).
pub fn runs_with_daemon(policy: &RestartPolicy, stopped_by_user: bool) -> bool {
    matches!(policy.name.as_str(), "always" | "unless-stopped") && !stopped_by_user
}

/// The delay before the next start; `quick_restarts` counts the runs in a row that
/// lasted less than [`STABLE_RUN`].
pub fn delay(quick_restarts: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(2u32.saturating_pow(quick_restarts.min(20)))
        .min(MAX_DELAY)
}

/// Whether a run of this length resets the back-off.
pub fn was_stable(ran_for: Duration) -> bool {
    ran_for >= STABLE_RUN
}

/// `no`, `always`, `unless-stopped`, `on-failure` (with an optional count) or empty.
pub fn validate(policy: &RestartPolicy) -> Result<(), String> {
    match policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => return Err(format!("invalid restart policy '{other}'")),
    }
    if policy.maximum_retry_count != 0 && policy.name != "on-failure" {
        return Err(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                .to_string(),
        );
    }
    if policy.maximum_retry_count < 0 {
        return Err("invalid restart policy: maximum retry count cannot be negative".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, max: i64) -> RestartPolicy {
        RestartPolicy {
            name: name.into(),
            maximum_retry_count: max,
        }
    }

    #[test]
    fn policies_decide_as_dockers() {
        assert!(!should_restart(&policy("no", 0), 1, false, 0));
        assert!(should_restart(&policy("always", 0), 0, false, 5));
        assert!(!should_restart(&policy("always", 0), 0, true, 0));
        assert!(should_restart(&policy("on-failure", 2), 1, false, 1));
        assert!(!should_restart(&policy("on-failure", 2), 1, false, 2));
        assert!(!should_restart(&policy("on-failure", 0), 0, false, 0));
        assert!(runs_with_daemon(&policy("unless-stopped", 0), false));
        assert!(!runs_with_daemon(&policy("unless-stopped", 0), true));
        assert!(validate(&policy("sometimes", 0)).is_err());
        assert!(validate(&policy("always", 3)).is_err());
    }

    #[test]
    fn delays_double_up_to_a_minute() {
        assert_eq!(delay(0), Duration::from_millis(100));
        assert_eq!(delay(3), Duration::from_millis(800));
        assert_eq!(delay(30), Duration::from_secs(60));
    }
}
