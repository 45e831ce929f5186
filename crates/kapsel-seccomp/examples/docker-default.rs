//! Prints Docker's default seccomp profile converted for the given capabilities (default:
//! Docker's default set) as config.json's `linux.seccomp`; used by bench/.

const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let caps: Vec<String> = if args.is_empty() {
        DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        args
    };
    let seccomp = kapsel_seccomp::docker_default(&caps)?;
    println!("{}", serde_json::to_string(&seccomp)?);
    Ok(())
}
