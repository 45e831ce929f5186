//! A client program (docker or kapsel) under a real pseudo-terminal, as a user at a
//! terminal runs it: typed input, the screen's output, and resizes. Shared by the
//! kapseld and kapsel-cli tests (the latter include this file by path).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

nix::ioctl_write_ptr_bad!(set_window_size, libc::TIOCSWINSZ, Winsize);

/// How long output is waited for, and the client's exit.
const PATIENCE: Duration = Duration::from_secs(30);

fn window(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A program whose controlling terminal is a pty we hold the master of.
pub struct PtySession {
    master: File,
    child: Child,
    /// Everything the program wrote to its terminal so far.
    screen: Arc<Mutex<Vec<u8>>>,
    /// How much of `screen` [`PtySession::expect`] has consumed.
    seen: usize,
}

impl PtySession {
    /// Starts `cmd` in a new session with a `rows`×`cols` pty as its controlling
    /// terminal and stdio.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> PtySession {
        let pty = openpty(Some(&window(rows, cols)), None).expect("openpty");
        cmd.stdin(pty.slave.try_clone().unwrap())
            .stdout(pty.slave.try_clone().unwrap())
            .stderr(pty.slave);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn the client under a pty");
        // Our copies of the slave go with `cmd`, so reads of the master end (EIO) once
        // the client and everything it started have closed theirs.
        drop(cmd);
        let master = File::from(pty.master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                shared.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        PtySession {
            master,
            child,
            screen,
            seen: 0,
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\r").as_bytes())
            .expect("type into the pty");
    }

    /// Waits until `text` appears on the screen after what earlier calls consumed, and
    /// consumes it.
    #[track_caller]
    pub fn expect(&mut self, text: &str) {
        self.expect_one_of(&[text]);
    }

    /// Waits until one of `texts` appears on the screen after what earlier calls
    /// consumed, consumes up to the end of the first to appear, and returns its index.
    #[track_caller]
    pub fn expect_one_of(&mut self, texts: &[&str]) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            {
                let screen = self.screen.lock().unwrap();
                let rest = &screen[self.seen..];
                let found = texts
                    .iter()
                    .enumerate()
                    .filter_map(|(i, text)| {
                        let at = rest
                            .windows(text.len())
                            .position(|w| w == text.as_bytes())?;
                        Some((at + text.len(), i))
                    })
                    .min();
                if let Some((end, i)) = found {
                    self.seen += end;
                    return i;
                }
                assert!(
                    Instant::now() < deadline,
                    "none of {texts:?} appeared; the screen after what was consumed: {:?}",
                    String::from_utf8_lossy(rest)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resizes the terminal as a terminal emulator does: TIOCSWINSZ on the master, and
    /// the kernel sends SIGWINCH to the client (the terminal's foreground process group).
    pub fn resize(&self, rows: u16, cols: u16) {
        // SAFETY: the fd is our open master and the pointer a valid Winsize.
        unsafe { set_window_size(self.master.as_raw_fd(), &window(rows, cols)) }
            .expect("TIOCSWINSZ");
    }

    /// The client's exit code, once it has exited.
    #[track_caller]
    pub fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the client did not exit; its screen: {:?}",
                String::from_utf8_lossy(&self.screen.lock().unwrap())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        // Our own child, by PID, if a failed assertion left it running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// When the container's terminal gets the client's size.
#[derive(Clone, Copy, PartialEq)]
pub enum InitialSize {
    /// At create (API ≥ 1.42's ConsoleSize): the first command sees it.
    AtCreate,
    /// By a resize after the start (older clients), so a command typed ahead may still
    /// see 0×0, with dockerd as well.
    AfterStart,
}

/// A shell session through `client` (a docker-like CLI, `-H` given, ready for the
/// `run -it`/`exec -it` arguments, which end with busybox's `sh`) under a 24×80 pty: typed
/// commands run in the container and their output comes back, `stty size` follows the
/// terminal's size, a resize reaches the container as SIGWINCH with the new size, and
/// the shell's exit code is the client's.
pub fn check_interactive_shell(client: Command, initial: InitialSize) {
    let mut pty = PtySession::spawn(client, 24, 80);
    // Quotes split the marker in the echoed command line, so only the output matches.
    pty.type_line(r#"echo in-""side $(tty)"#);
    pty.expect("in-side /dev/pts/");
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            Instant::now() < deadline,
            "the terminal's size never arrived"
        );
        pty.type_line("stty size");
        // busybox's stty fails on a 0×0 terminal.
        let zero_size = pty.expect_one_of(&["24 80\r\n", "stty: standard input"]) == 1;
        if !zero_size {
            break;
        }
        assert!(
            initial == InitialSize::AfterStart,
            "the first command saw no size"
        );
    }

    // A child shell reports every SIGWINCH (a late first resize too); it waits in
    // `sleep`, so the trap runs within a second of the signal. ^C ends it.
    pty.type_line(concat!(
        r#"sh -c 'trap "echo got-""winch; stty size" WINCH; "#,
        r#"echo rea""dy; while :; do sleep 1; done'"#
    ));
    pty.expect("ready\r\n");
    pty.resize(30, 100);
    pty.expect("got-winch\r\n30 100\r\n");
    pty.type_line("\x03");
    pty.type_line("stty size");
    pty.expect("30 100\r\n");

    pty.type_line("exit 7");
    assert_eq!(pty.wait(), 7);
}
