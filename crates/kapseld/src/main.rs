//! kapseld: dockerd's flags, the Engine API on unix sockets.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use kapsel_image::store::ImageStore;
use kapseld::api::{self, AppState};
use kapseld::containers::Engine;
use kapseld::daemon::{self, DaemonConfig};
use kapseld::metrics::{self, MetricsState};
use kapseld::networks::Networks;

#[derive(Parser)]
#[command(
    name = "kapseld",
    version,
    about = "The kapsel daemon (Docker Engine API)"
)]
struct Flags {
    /// Where images, containers and volumes are kept.
    #[arg(long, default_value = "/var/lib/kapsel")]
    data_root: PathBuf,
    /// Where runtime state (sockets, container state) is kept.
    #[arg(long, default_value = "/run/kapsel")]
    exec_root: PathBuf,
    /// Socket(s) to listen on: unix:///path (may be given several times).
    #[arg(short = 'H', long = "host", default_value = "unix:///run/kapsel.sock")]
    hosts: Vec<String>,
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// debug, info, warn or error.
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
    /// The cgroup every container's cgroup goes under (default: derived from --data-root,
    /// so instances do not share one).
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Default container log options: max-size=SIZE, max-file=N.
    #[arg(long = "log-opt")]
    log_opts: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9323).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
}

fn main() -> Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&flags.log_level))
        .with_writer(std::io::stderr)
        .init();
    // One thread: the daemon mostly waits, and an idle daemon should cost little memory.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(flags))
}

async fn serve(flags: Flags) -> Result<()> {
    let started = std::time::Instant::now();
    let config = DaemonConfig {
        data_root: flags.data_root,
        exec_root: flags.exec_root,
        hosts: flags.hosts,
        pidfile: flags.pidfile,
    };
    if let Some(pidfile) = &config.pidfile {
        std::fs::write(pidfile, std::process::id().to_string())
            .with_context(|| format!("writing {}", pidfile.display()))?;
    }
    let images = Arc::new(
        ImageStore::open(&config.data_root)
            .with_context(|| format!("opening the images in {}", config.data_root.display()))?,
    );
    // Blobs and layers that a crash left unreferenced, collected off the start-up path.
    let collected = images.clone();
    tokio::task::spawn_blocking(move || match collected.gc() {
        Ok(bytes) if bytes > 0 => tracing::info!(bytes, "collected unreferenced image data"),
        Ok(_) => {}
        Err(e) => tracing::warn!("collecting unreferenced image data: {e}"),
    });
    let engine_config = daemon::engine_config(&config, flags.cgroup_parent, &flags.log_opts)?;
    let cgroup_parent = engine_config.cgroup_parent.clone();
    let networks = Arc::new(
        Networks::open(
            &config.data_root,
            &config.exec_root,
            daemon::network_instance(&config.data_root),
        )
        .with_context(|| format!("opening the networks in {}", config.data_root.display()))?,
    );
    // Blocking: the networks of running containers are restored over netlink.
    let engine = {
        let (images, networks, data_root) =
            (images.clone(), networks.clone(), config.data_root.clone());
        tokio::task::spawn_blocking(move || {
            Engine::open(engine_config, images, networks)
                .with_context(|| format!("opening the containers in {}", data_root.display()))
        })
        .await
        .context("engine task")??
    };
    let state = AppState {
        config: Arc::new(config.clone()),
        images,
        engine,
    };
    let shutdown = shutdown_signal()?;
    let mut servers = tokio::task::JoinSet::new();
    for host in &config.hosts {
        let path = daemon::socket_path(host)?;
        let listener = daemon::bind(&path)?;
        tracing::info!(socket = %path.display(), "API listening");
        let app = api::service(state.clone());
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    if let Some(addr) = flags.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-addr {addr}: listening"))?;
        tracing::info!(%addr, "metrics listening");
        let app = metrics::service(MetricsState {
            engine: state.engine.clone(),
            started,
        });
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    tokio::select! {
        done = servers.join_next() => {
            done.context("no socket to serve")?.context("server task")?.context("serving the API")?;
        }
        _ = shutdown => tracing::info!("shutting down"),
    }
    for host in &config.hosts {
        if let Ok(path) = daemon::socket_path(host) {
            let _ = std::fs::remove_file(path);
        }
    }
    if let Some(pidfile) = &config.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    // Containers outlive the daemon; their bridges, firewall table and parent cgroup go
    // only when none is left.
    tokio::task::spawn_blocking(move || networks.shutdown())
        .await
        .context("network task")?;
    daemon::remove_empty_cgroup(&cgroup_parent);
    Ok(())
}

/// Installs the handlers at once (before the sockets are bound, so a client that sees
/// the socket can rely on a clean shutdown), and resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
