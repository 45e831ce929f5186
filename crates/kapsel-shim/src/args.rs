//! The command line. It is a private interface between kapseld and the shim, so it is
//! parsed by hand (an argument-parsing crate would cost more than the rest of the shim's
//! start-up code). `--flag VALUE` and `--flag=VALUE` are both accepted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the shim supervises.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    /// A container's first process: `runtime run --bundle DIR`.
    Container { bundle: PathBuf },
    /// An extra process in a running container: `runtime exec --process FILE`.
    Exec { process: PathBuf },
}

/// Where the json-file log goes and how it rotates.
#[derive(Debug, PartialEq, Eq)]
pub struct LogOptions {
    pub path: PathBuf,
    /// 0 = never rotate.
    pub max_size: u64,
    /// How many files in all, the live one included (Docker's `max-file`, at least 1).
    pub max_file: u32,
    pub compress: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    pub id: String,
    pub dir: PathBuf,
    pub mode: Mode,
    pub tty: bool,
    pub stdin: bool,
    /// None with `--log-driver none`.
    pub log: Option<LogOptions>,
    /// The container's OOM-kill counter (`oom_kill N` in cgroup v1's memory.oom_control
    /// or v2's memory.events), read at the exit before the runtime removes the cgroup.
    pub oom_file: Option<PathBuf>,
}

pub const USAGE: &str = "usage: kapsel-shim --runtime PATH --runtime-root DIR --id ID --dir DIR \
(--bundle DIR | --exec-process FILE) [--tty] [--stdin] [--log-driver json-file|none] \
[--log-path FILE] [--log-max-size BYTES] [--log-max-file N] [--log-compress] [--oom-file FILE]";

/// Values as they come from the command line, before the combination is checked.
#[derive(Default)]
struct Raw {
    runtime: Option<PathBuf>,
    runtime_root: Option<PathBuf>,
    id: Option<String>,
    dir: Option<PathBuf>,
    bundle: Option<PathBuf>,
    exec_process: Option<PathBuf>,
    tty: bool,
    stdin: bool,
    log_driver: Option<String>,
    log_path: Option<PathBuf>,
    log_max_size: Option<u64>,
    log_max_file: Option<u32>,
    log_compress: bool,
    oom_file: Option<PathBuf>,
}

/// Parses the arguments after the program name.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Args> {
    let mut raw = Raw::default();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| Error::msg(format!("argument {a:?} is not valid UTF-8")))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = || -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| Error::msg(format!("{flag} needs a value"))),
            }
        };
        match flag.as_str() {
            "--runtime" => raw.runtime = Some(value()?.into()),
            "--runtime-root" => raw.runtime_root = Some(value()?.into()),
            "--id" => raw.id = Some(value()?),
            "--dir" => raw.dir = Some(value()?.into()),
            "--bundle" => raw.bundle = Some(value()?.into()),
            "--exec-process" => raw.exec_process = Some(value()?.into()),
            "--log-driver" => raw.log_driver = Some(value()?),
            "--log-path" => raw.log_path = Some(value()?.into()),
            "--log-max-size" => raw.log_max_size = Some(number(&flag, &value()?)?),
            "--log-max-file" => raw.log_max_file = Some(number(&flag, &value()?)?),
            "--oom-file" => raw.oom_file = Some(value()?.into()),
            "--tty" | "--stdin" | "--log-compress" if inline.is_some() => {
                return Err(Error::msg(format!("{flag} takes no value")))
            }
            "--tty" => raw.tty = true,
            "--stdin" => raw.stdin = true,
            "--log-compress" => raw.log_compress = true,
            _ => return Err(Error::msg(format!("unknown argument {flag:?}"))),
        }
    }
    raw.check()
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| Error::msg(format!("{flag} {text:?}: not a non-negative integer")))
}

fn required<T>(v: Option<T>, flag: &str) -> Result<T> {
    v.ok_or_else(|| Error::msg(format!("{flag} is required")))
}

impl Raw {
    fn check(self) -> Result<Args> {
        let id = required(self.id, "--id")?;
        if id.is_empty() || id.starts_with('-') || id.contains('/') {
            return Err(Error::msg(format!("--id {id:?} is not a container id")));
        }
        let dir = absolute(required(self.dir, "--dir")?);
        let mode = match (self.bundle, self.exec_process) {
            (Some(b), None) => Mode::Container {
                bundle: absolute(b),
            },
            (None, Some(p)) => Mode::Exec {
                process: absolute(p),
            },
            _ => {
                return Err(Error::msg(
                    "exactly one of --bundle and --exec-process is required",
                ))
            }
        };
        let log = match self.log_driver.as_deref().unwrap_or("json-file") {
            "none" => None,
            "json-file" => {
                let max_file = self.log_max_file.unwrap_or(1);
                if max_file == 0 {
                    return Err(Error::msg("--log-max-file must be at least 1"));
                }
                Some(LogOptions {
                    path: absolute(
                        self.log_path
                            .unwrap_or_else(|| dir.join(format!("{id}-json.log"))),
                    ),
                    max_size: self.log_max_size.unwrap_or(0),
                    max_file,
                    compress: self.log_compress,
                })
            }
            other => {
                return Err(Error::msg(format!(
                    "--log-driver {other:?}: only json-file and none are supported"
                )))
            }
        };
        let runtime = required(self.runtime, "--runtime")?;
        Ok(Args {
            // A bare name is left to the PATH search; a relative path is made absolute.
            runtime: if runtime.components().count() > 1 {
                absolute(runtime)
            } else {
                runtime
            },
            runtime_root: absolute(required(self.runtime_root, "--runtime-root")?),
            id,
            dir,
            mode,
            tty: self.tty,
            stdin: self.stdin,
            log,
            oom_file: self.oom_file.map(absolute),
        })
    }
}

/// The shim moves to `/` so that it does not pin its caller's working directory (and the
/// mount under it) for the container's lifetime; relative paths are resolved first.
fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        return p;
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(p),
        Err(_) => Path::new("/").join(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Args> {
        parse(args.split_whitespace().map(OsString::from))
    }

    const BASE: &str = "--runtime /bin/rt --runtime-root /run/rt --id c1 --dir /run/s/c1";

    #[test]
    fn container_mode_with_defaults() {
        let a = parse_str(&format!("{BASE} --bundle /b")).unwrap();
        assert_eq!(
            a.mode,
            Mode::Container {
                bundle: "/b".into()
            }
        );
        assert!(!a.tty && !a.stdin);
        let log = a.log.unwrap();
        assert_eq!(log.path, PathBuf::from("/run/s/c1/c1-json.log"));
        assert_eq!((log.max_size, log.max_file, log.compress), (0, 1, false));
    }

    #[test]
    fn exec_mode_with_every_flag() {
        let a = parse_str(&format!(
            "{BASE} --exec-process=/p.json --tty --stdin --log-driver json-file \
             --log-path /l --log-max-size 1000 --log-max-file=3 --log-compress"
        ))
        .unwrap();
        assert_eq!(
            a.mode,
            Mode::Exec {
                process: "/p.json".into()
            }
        );
        assert!(a.tty && a.stdin);
        assert_eq!(
            a.log,
            Some(LogOptions {
                path: "/l".into(),
                max_size: 1000,
                max_file: 3,
                compress: true
            })
        );
    }

    #[test]
    fn log_driver_none() {
        let a = parse_str(&format!("{BASE} --bundle /b --log-driver none")).unwrap();
        assert_eq!(a.log, None);
    }

    #[test]
    fn errors_name_the_flag() {
        let err = |s: &str| parse_str(s).unwrap_err().to_string();
        assert!(err(BASE).contains("--bundle"));
        assert!(err(&format!("{BASE} --bundle /b --exec-process /p")).contains("exactly one"));
        assert!(err(&format!("{BASE} --bundle /b --log-max-size x")).contains("--log-max-size"));
        assert!(err(&format!("{BASE} --bundle /b --log-max-file 0")).contains("at least 1"));
        assert!(err(&format!("{BASE} --bundle /b --frob")).contains("--frob"));
        assert!(err(&format!("{BASE} --bundle")).contains("--bundle needs a value"));
        assert!(err(&format!("{BASE} --bundle /b --log-driver syslog")).contains("syslog"));
    }
}
