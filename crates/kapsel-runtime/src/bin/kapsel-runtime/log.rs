//! Where errors go: stderr, and with `--log` a file in runc's format (text or JSON lines),
//! which engines such as podman read.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::args::LogFormat;

pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
}

impl Logger {
    /// Debug tracing is set up only with `--debug`: building a subscriber costs more than
    /// the rest of a short command's start-up, and without it warnings still reach stderr.
    pub fn new(file: Option<&Path>, format: LogFormat, debug: bool) -> Self {
        if debug {
            let builder = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(std::io::stderr);
            let _ = if format == LogFormat::Json {
                builder.json().try_init()
            } else {
                builder.try_init()
            };
        }
        Logger {
            file: file.map(Path::to_path_buf),
            format,
        }
    }

    pub fn error(&self, message: &str) {
        eprintln!("kapsel-runtime: {message}");
        let Some(path) = &self.file else {
            return;
        };
        let line = match self.format {
            LogFormat::Json => serde_json::json!({
                "level": "error",
                "msg": message,
                "time": kapsel_runtime::state::now_rfc3339(),
            })
            .to_string(),
            LogFormat::Text => format!("level=error msg={message:?}"),
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
