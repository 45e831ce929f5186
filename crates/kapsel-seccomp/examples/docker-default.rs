//! Prints Docker's default seccomp profile converted for the given capabilities (default:
//! Docker's default set) as config.json's `linux.seccomp`; used by bench/.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let caps: Vec<String> = if args.is_empty() {
        kapsel_seccomp::DOCKER_DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect()
    } else {
        args
    };
    let seccomp = kapsel_seccomp::docker_default(&caps)?;
    println!("{}", serde_json::to_string(&seccomp)?);
    Ok(())
}
