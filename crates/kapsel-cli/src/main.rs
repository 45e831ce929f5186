//! `kapsel`: docker's command line, as a client of kapseld's Docker Engine API.

mod client;
mod commands;
mod format;
mod opts;
mod stream;
mod tty;

use clap::Parser;

use commands::{Cli, CmdError};

fn main() {
    let code = match real_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{err:#}");
            1
        }
    };
    // Exit without unwinding the runtime: a blocking read of stdin (attach, exec) may
    // still be pending and would otherwise hold the process open.
    std::process::exit(code);
}

/// Parses the command line, runs the command on a single-threaded runtime, prints the
/// error the way docker does, and returns the exit status.
fn real_main() -> anyhow::Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return Ok(usage_error(e)),
    };
    if cli.version {
        println!("kapsel version {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(0);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let client = client::Client::resolve(cli.host.as_deref())?;
        commands::dispatch(&client, command).await
    });
    let code = match outcome {
        Ok(code) => code,
        Err(err) => report(&err),
    };
    // Leak the runtime rather than wait for its blocking threads (see main).
    std::mem::forget(runtime);
    Ok(code)
}

/// Prints a command's error on stderr and returns its exit status. A closed stdout
/// (`kapsel images | head -1`) ends the program quietly, as it does docker.
fn report(err: &CmdError) -> i32 {
    if let CmdError::Io(e) = err {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return 141;
        }
    }
    let message = err.to_string();
    if !message.is_empty() {
        eprintln!("{message}");
    }
    err.exit_code()
}

/// Help prints to stdout with status 0; any other command-line error exits 125, the
/// status docker gives flag errors.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        _ => 125,
    }
}
