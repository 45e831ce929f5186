//! kapsel-shim: the per-container supervisor kapseld starts for each container start and
//! each exec. It outlives kapseld, holds the container's stdio, writes its json-file log,
//! serves the attach socket, and records the exit status in `<dir>/exit.json`.
//!
//! ```text
//! kapsel-shim --runtime PATH --runtime-root DIR --id ID --dir DIR
//!             (--bundle DIR | --exec-process FILE) [--tty] [--stdin]
//!             [--log-driver json-file|none] [--log-path FILE]
//!             [--log-max-size BYTES] [--log-max-file N] [--log-compress]
//! ```
//!
//! Inherited: fd 3, the listening attach socket; fd 4, the readiness pipe.
//!
//! Everything happens on one thread around one poll(2): a shim is idle nearly all its
//! life, and its memory is what counts, since one runs per container.

mod args;
mod attach;
mod diag;
mod error;
mod exit;
mod json;
mod logfile;
mod memory;
mod process;
mod readiness;
mod rotate;
mod runtime;
mod stdin;
mod stdio;
mod time;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{getsockopt, sockopt};

use crate::args::{Args, Mode};
use crate::attach::{Client, Request};
use crate::error::{Context, Error, Result};
use crate::exit::ExitStatus;
use crate::logfile::JsonFileLog;
use crate::readiness::Readiness;
use crate::stdin::StdinWriter;
use crate::stdio::{Output, ReadOutcome, Stream};

/// The listening attach socket kapseld bound at `<dir>/attach.sock`.
const ATTACH_FD: RawFd = 3;
/// The write end of the readiness pipe.
const READINESS_FD: RawFd = 4;
/// How long output is still read after the process exited: a daemonised grandchild may
/// hold the pipes open forever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);
/// How long clients get, at the end, to take the output queued for them.
const CLIENT_FLUSH_LIMIT: Duration = Duration::from_secs(2);
/// Quiet time after which the memory a burst (or start-up) used is given back.
const IDLE_AFTER_MS: i32 = 2000;
/// One read of container output (also the most one frame carries). Small on purpose: it
/// bounds the memory a burst of output touches.
const READ_SIZE: usize = 8192;

fn main() {
    process::close_from(READINESS_FD + 1);
    let readiness = Readiness::inherit(READINESS_FD);
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kapsel-shim: {e}\n{}", args::USAGE);
            readiness.failed(&e.to_string());
            std::process::exit(2);
        }
    };
    diag::init(args.dir.join("shim.log"));
    let _ = std::env::set_current_dir("/");
    let code = match Shim::start(&args) {
        Ok(mut shim) => {
            readiness.started(shim.pid);
            shim.run()
        }
        Err(e) => {
            diag::log(format_args!("start: {e}"));
            readiness.failed(&e.to_string());
            1
        }
    };
    std::process::exit(code);
}

struct Shim<'a> {
    args: &'a Args,
    signals: SignalFd,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    /// Output fds not at EOF yet.
    outputs: Vec<Output>,
    stdin: StdinWriter,
    /// The pty master, for resizing.
    console: Option<OwnedFd>,
    log: Option<JsonFileLog>,
    /// The container's (or exec'd) process.
    pid: i32,
    /// Its status, and until when output is still read.
    exited: Option<(ExitStatus, Instant)>,
    /// For reads of output and of clients; empty while idle (see [`Shim::go_idle`]).
    buf: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    /// Burst buffers were given back and nothing happened since.
    idle: bool,
}

impl<'a> Shim<'a> {
    /// Everything up to the running process: the shim's own setup, stdio, the clients
    /// already waiting, the log file, and the runtime.
    fn start(args: &'a Args) -> Result<Self> {
        let signals = process::detach_and_protect()?;
        let listener = inherit_listener(ATTACH_FD)?;
        // Opened first: a log that cannot be written should stop the start, not leave a
        // container running unsupervised.
        let log = args.log.as_ref().map(JsonFileLog::open).transpose()?;
        let (prepared, runtime_stdio) = stdio::prepare(&args.dir, args.tty, args.stdin)?;
        // Clients that connected before the shim ran must see output from the first byte.
        let mut clients = Vec::new();
        if let Some(l) = &listener {
            attach::accept_all(l, &mut clients);
        }
        let pid = runtime::start(args, runtime_stdio, prepared.console_socket())?;
        let io = prepared
            .finish()
            .and_then(|io| check_child(pid).map(|()| io))
            .inspect_err(|_| abandon(args, pid))?;
        Ok(Shim {
            args,
            signals,
            listener,
            clients,
            outputs: io.outputs,
            stdin: StdinWriter::new(io.stdin, args.tty),
            console: io.console,
            log,
            pid,
            exited: None,
            buf: Vec::new(),
            pollfds: Vec::new(),
            idle: false,
        })
    }

    /// The event loop, then the end; returns the shim's exit code.
    fn run(&mut self) -> i32 {
        // The process may have exited before the loop: its SIGCHLD may have merged with
        // the runtime's.
        self.reap();
        while !self.done() {
            if let Err(e) = self.turn() {
                diag::log(e);
                return 1;
            }
        }
        self.finish()
    }

    /// Done once the process exited and its output ended, or the grace time is over.
    fn done(&self) -> bool {
        self.exited
            .is_some_and(|(_, until)| self.outputs.is_empty() || Instant::now() >= until)
    }

    /// One poll and the handling of what it reported.
    fn turn(&mut self) -> Result<()> {
        let reading_clients = !self.stdin.blocked();
        self.pollfds.clear();
        let mut watch =
            |fd: Option<RawFd>, events: i16| self.pollfds.push(pollfd(fd.unwrap_or(-1), events));
        watch(Some(self.signals.as_raw_fd()), libc::POLLIN);
        watch(self.listener.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        watch(self.stdin.waiting_fd(), libc::POLLOUT);
        for o in &self.outputs {
            watch(Some(o.fd.as_raw_fd()), libc::POLLIN);
        }
        for c in &self.clients {
            let events = c.events(reading_clients);
            watch(events.map(|_| c.fd()), events.unwrap_or(0));
        }
        let polled_clients = self.clients.len();
        let timeout = self.poll_timeout();
        let n = match poll(&mut self.pollfds, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e).ctx(|| "poll"),
        };
        if n == 0 {
            if self.exited.is_none() {
                self.go_idle();
            }
            return Ok(());
        }
        self.idle = false;
        if self.buf.is_empty() {
            self.buf = vec![0; READ_SIZE];
        }
        // Taken out for the dispatch below, which needs `self` whole.
        let pollfds = std::mem::take(&mut self.pollfds);
        let (fixed, rest) = pollfds.split_at(3);
        let (outputs, clients) = rest.split_at(self.outputs.len());
        if fixed[0].revents != 0 {
            process::drain(&self.signals);
            self.reap();
        }
        if fixed[1].revents != 0 {
            if let Some(l) = &self.listener {
                attach::accept_all(l, &mut self.clients);
            }
        }
        if fixed[2].revents != 0 {
            self.stdin.flush();
        }
        self.read_outputs(outputs);
        self.serve_clients(&clients[..polled_clients], reading_clients);
        self.pollfds = pollfds;
        self.clients.retain(|c| !c.is_gone());
        Ok(())
    }

    fn poll_timeout(&self) -> i32 {
        match self.exited {
            Some((_, until)) => millis_until(until),
            None if self.idle => -1,
            None => IDLE_AFTER_MS,
        }
    }

    /// Reads each ready output once (one read per turn keeps a chatty stream from
    /// starving the other), and drops the ones at EOF.
    fn read_outputs(&mut self, polled: &[libc::pollfd]) {
        let mut ended = [false; 2];
        for (i, p) in polled.iter().enumerate() {
            if p.revents == 0 {
                continue;
            }
            match self.outputs[i].read(&mut self.buf) {
                ReadOutcome::Data(n) => self.distribute(self.outputs[i].stream, n),
                ReadOutcome::Eof => ended[i] = true,
                ReadOutcome::Again => {}
            }
        }
        let mut i = 0;
        self.outputs.retain(|_| {
            i += 1;
            !ended[i - 1]
        });
    }

    /// One chunk of output, in `buf[..n]`, to every client and to the log.
    fn distribute(&mut self, stream: Stream, n: usize) {
        let data = &self.buf[..n];
        for c in &mut self.clients {
            c.send(stream, data);
        }
        if let Some(log) = &mut self.log {
            log.write(stream, data, SystemTime::now());
        }
    }

    fn serve_clients(&mut self, polled: &[libc::pollfd], reading: bool) {
        let Shim {
            clients,
            stdin,
            console,
            buf,
            ..
        } = self;
        for (c, p) in clients.iter_mut().zip(polled) {
            let ev = p.revents;
            if ev & libc::POLLOUT != 0 {
                c.flush();
            }
            let hangup = ev & (libc::POLLHUP | libc::POLLERR) != 0;
            if reading && !c.input_done() && (ev & libc::POLLIN != 0 || hangup) {
                c.receive(buf, |req| handle(req, stdin, console.as_ref()));
            }
            if hangup {
                c.hung_up();
            }
        }
    }

    fn reap(&mut self) {
        let pid = self.pid;
        let mut status = None;
        process::reap_children(|p, s| {
            if p == pid {
                status = Some(s);
            }
        });
        if let (Some(s), None) = (status, self.exited) {
            self.exited = Some((s, Instant::now() + DRAIN_AFTER_EXIT));
        }
    }

    /// Nothing happened for a while: buffers grown for a burst, free heap and the code
    /// pages only start-up used go back to the kernel, since most shims spend most of
    /// their life waiting. The next activity re-arms this.
    fn go_idle(&mut self) {
        self.buf = Vec::new();
        for c in &mut self.clients {
            c.release_buffers();
        }
        if let Some(log) = &mut self.log {
            log.release_buffers();
        }
        memory::release_code_pages();
        memory::trim_heap();
        self.idle = true;
    }

    /// After the process's end: the log's unfinished lines, exit.json, the runtime's
    /// state (container mode), and the clients' last output.
    fn finish(&mut self) -> i32 {
        let now = SystemTime::now();
        if let Some(log) = &mut self.log {
            log.finish(now);
        }
        self.outputs.clear();
        let (status, _) = self.exited.expect("finish runs after the exit");
        let oom_killed = self.args.oom_file.as_deref().is_some_and(exit::oom_killed);
        let mut code = 0;
        if let Err(e) = exit::write_exit_json(&self.args.dir, status, now, oom_killed) {
            diag::log(format_args!(
                "write {}: {e}",
                self.args.dir.join("exit.json").display()
            ));
            code = 1;
        }
        if let Mode::Container { .. } = self.args.mode {
            runtime::delete(self.args);
        }
        self.flush_clients();
        for c in self.clients.drain(..) {
            c.close();
        }
        code
    }

    /// Gives clients a bounded time to take their queued output.
    fn flush_clients(&mut self) {
        let until = Instant::now() + CLIENT_FLUSH_LIMIT;
        loop {
            for c in &mut self.clients {
                c.flush();
            }
            self.clients.retain(|c| !c.is_gone());
            let mut waiting: Vec<libc::pollfd> = self
                .clients
                .iter()
                .filter(|c| c.has_output())
                .map(|c| pollfd(c.fd(), libc::POLLOUT))
                .collect();
            if waiting.is_empty() || Instant::now() >= until {
                return;
            }
            // An error (EINTR) only means another round.
            let _ = poll(&mut waiting, millis_until(until));
        }
    }
}

fn pollfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// poll(2); returns how many fds are ready.
fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> std::io::Result<usize> {
    // SAFETY: fds is a valid array of pollfd of the given length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// poll's timeout for a deadline: rounded up, so that the deadline has passed on return.
fn millis_until(until: Instant) -> i32 {
    let left = until.saturating_duration_since(Instant::now());
    i32::try_from(left.as_millis()).unwrap_or(i32::MAX - 1) + 1
}

/// What a client asked for.
fn handle(req: Request<'_>, stdin: &mut StdinWriter, console: Option<&OwnedFd>) {
    match req {
        Request::Stdin(data) => stdin.write(data),
        Request::CloseStdin => stdin.close(),
        Request::Resize { rows, cols } => {
            if let Some(c) = console {
                stdio::resize(c.as_fd(), rows, cols);
            }
        }
    }
}

/// The attach socket on `fd`, non-blocking (so accepting never waits), or None when the
/// shim was started without one.
fn inherit_listener(fd: RawFd) -> Result<Option<UnixListener>> {
    if !process::set_cloexec(fd) {
        return Ok(None);
    }
    // SAFETY: fd is open (F_SETFD succeeded) and by the shim's contract is the attach
    // socket, owned by nothing else in this process.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    let listening = getsockopt(&listener, sockopt::AcceptConn)
        .ctx(|| format!("fd {fd} is not the attach socket"))?;
    if !listening {
        return Err(Error::msg(format!(
            "fd {fd} is not a listening socket (the attach socket)"
        )));
    }
    listener
        .set_nonblocking(true)
        .ctx(|| "make the attach socket non-blocking")?;
    Ok(Some(listener))
}

/// The shim learns of the process's end by reaping it, so it must be its child (the
/// runtime's intermediate processes exit and the shim is the subreaper). Checked now so
/// that a runtime that keeps it elsewhere fails the start instead of hanging the shim.
fn check_child(pid: i32) -> Result<()> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    // WNOWAIT only inspects: the process is reaped by the loop.
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    waitid(Id::Pid(nix::unistd::Pid::from_raw(pid)), flags).ctx(|| {
        format!("process {pid} is not a child of the shim (the runtime did not leave it to its subreaper)")
    })?;
    Ok(())
}

/// The start failed after the runtime started the process: it must not run on without
/// a supervisor.
fn abandon(args: &Args, pid: i32) {
    match args.mode {
        Mode::Container { .. } => runtime::delete(args),
        Mode::Exec { .. } => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
