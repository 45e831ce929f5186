//! kapsel-runtime: runc's command line over the kapsel-runtime library.

mod args;
mod log;
mod resources;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use kapsel_runtime::ops;
use kapsel_runtime::state::StateRoot;

use args::{Cli, Command, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.as_deref(), cli.log_format, cli.debug);
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            logger.error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    // Commands that put processes into a container run from a read-only view of this
    // binary (see `sealed_exe`); the others need not pay the re-exec.
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        kapsel_runtime::sealed_exe::ensure()?;
    }
    let root = StateRoot::new(&cli.root);
    match &cli.command {
        Command::Spec { bundle, rootless } => {
            kapsel_runtime::spec::write_default(bundle, *rootless)?;
        }
        Command::Create(c) => {
            ops::create(&root, &c.options())?;
        }
        Command::Run(r) => return Ok(ops::run(&root, &r.create.options(), r.detach)?),
        Command::Start { id } => ops::start(&root, id)?,
        Command::State { id } => print_json(&ops::state(&root, id)?)?,
        Command::Kill { id, signal, all } => {
            ops::kill(&root, id, ops::parse_signal(signal)?, *all)?;
        }
        Command::Delete { id, force } => ops::delete(&root, id, *force)?,
        Command::Exec(e) => return Ok(ops::exec(&root, e.options(&root)?)?),
        Command::Ps {
            id,
            format,
            ps_args,
        } => ps(&root, id, *format, ps_args)?,
        Command::List { format, quiet } => list(&root, *format, *quiet)?,
        Command::Pause { id } => ops::pause(&root, id)?,
        Command::Resume { id } => ops::resume(&root, id)?,
        Command::Events {
            id,
            stats,
            interval,
        } => {
            let opts = ops::EventsOptions {
                id: id.clone(),
                stats_once: *stats,
                interval: args::parse_duration(interval)?,
            };
            ops::events(&root, &opts, &mut std::io::stdout().lock())?;
        }
        Command::Update(u) => ops::update(&root, &u.id, &u.resources()?)?,
        Command::Features => print_json(&ops::features())?,
    }
    Ok(0)
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn list(root: &StateRoot, format: Format, quiet: bool) -> Result<()> {
    let states = ops::list(root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            writeln!(out, "{}", s["id"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    if format == Format::Json {
        serde_json::to_writer(&mut out, &states)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    )?;
    for s in &states {
        writeln!(
            out,
            "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
            s["id"].as_str().unwrap_or_default(),
            s["pid"],
            s["status"].as_str().unwrap_or_default(),
            s["bundle"].as_str().unwrap_or_default(),
            s["created"].as_str().unwrap_or_default(),
            s["owner"].as_str().unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// `ps`: JSON is the PID list; the table is the host's `ps` output (`-ef` unless other
/// options are given) filtered to the container's processes, as runc prints it.
fn ps(root: &StateRoot, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let pids = ops::ps(root, id)?;
    if format == Format::Json {
        return print_json(&serde_json::json!(pids));
    }
    let args: Vec<&str> = if ps_args.is_empty() {
        vec!["-ef"]
    } else {
        ps_args.iter().map(String::as_str).collect()
    };
    let output = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
