//! Attach clients: connections on the attach socket. Both directions use Docker's stream
//! framing, an 8-byte header `[kind, 0, 0, 0, len u32 BE]` and `len` bytes of payload.
//!
//! Shim → client: kind 1 = stdout, 2 = stderr (a terminal's output is stdout).
//! Client → shim: kind 0 = stdin data, 1 = close stdin, 2 = resize (rows u16 BE, cols u16
//! BE); other kinds are skipped.
//!
//! Clients are non-blocking and never slow the container down: output a client has not
//! taken waits in its own buffer, and a client more than [`MAX_BACKLOG`] behind is
//! dropped.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

use crate::stdio::Stream;

/// How much output may wait for one client before it is dropped.
pub const MAX_BACKLOG: usize = 1 << 20;

/// Past this, a client's buffer is compacted or released once written.
const KEEP_CAPACITY: usize = 64 << 10;

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Stdin(&'a [u8]),
    CloseStdin,
    Resize { rows: u16, cols: u16 },
}

const KIND_STDIN: u8 = 0;
const KIND_CLOSE_STDIN: u8 = 1;
const KIND_RESIZE: u8 = 2;

/// The 8-byte frame header.
pub fn header(kind: u8, len: usize) -> [u8; 8] {
    let len = (len as u32).to_be_bytes();
    [kind, 0, 0, 0, len[0], len[1], len[2], len[3]]
}

/// Incremental decoder of client frames. Stdin payloads are passed on as they arrive, so
/// a frame of any size needs no buffer.
#[derive(Default)]
struct FrameReader {
    header: [u8; 8],
    header_len: usize,
    /// Payload bytes still to come; None between frames.
    remaining: Option<u32>,
    resize: [u8; 4],
    resize_len: usize,
}

impl FrameReader {
    fn feed<'a>(&mut self, mut data: &'a [u8], on: &mut impl FnMut(Request<'a>)) {
        while !data.is_empty() {
            let Some(remaining) = self.remaining else {
                let take = (8 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len == 8 {
                    self.header_len = 0;
                    self.resize_len = 0;
                    let len = u32::from_be_bytes(self.header[4..8].try_into().expect("4 bytes"));
                    self.remaining = Some(len);
                    if self.header[0] == KIND_CLOSE_STDIN {
                        on(Request::CloseStdin);
                    }
                    if len == 0 {
                        self.end_frame(on);
                    }
                }
                continue;
            };
            let take = (remaining as usize).min(data.len());
            let (payload, rest) = data.split_at(take);
            match self.header[0] {
                KIND_STDIN => on(Request::Stdin(payload)),
                KIND_RESIZE => {
                    let n = payload.len().min(4 - self.resize_len);
                    self.resize[self.resize_len..self.resize_len + n]
                        .copy_from_slice(&payload[..n]);
                    self.resize_len += n;
                }
                _ => {}
            }
            data = rest;
            self.remaining = Some(remaining - take as u32);
            if remaining as usize == take {
                self.end_frame(on);
            }
        }
    }

    fn end_frame<'a>(&mut self, on: &mut impl FnMut(Request<'a>)) {
        self.remaining = None;
        if self.header[0] == KIND_RESIZE && self.resize_len == 4 {
            let [r0, r1, c0, c1] = self.resize;
            on(Request::Resize {
                rows: u16::from_be_bytes([r0, r1]),
                cols: u16::from_be_bytes([c0, c1]),
            });
        }
    }
}

pub struct Client {
    sock: UnixStream,
    /// Framed output not yet written; `out[sent..]` is what remains.
    out: Vec<u8>,
    sent: usize,
    frames: FrameReader,
    /// The client shut down its sending side: it only receives now.
    input_done: bool,
    /// Writing to the client failed: it only sends now.
    output_closed: bool,
    /// The client is gone or too far behind; it is removed at the end of the turn (not
    /// at once, so that poll results still match the client list).
    gone: bool,
}

/// Accepts every connection waiting on the (non-blocking) attach socket.
pub fn accept_all(listener: &UnixListener, clients: &mut Vec<Client>) {
    loop {
        match listener.accept() {
            Ok((sock, _)) => match sock.set_nonblocking(true) {
                Ok(()) => clients.push(Client::new(sock)),
                Err(e) => crate::diag::log(format_args!("make an attach client non-blocking: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // ECONNABORTED and the like concern one connection; keep the others.
                if e.raw_os_error() != Some(libc::ECONNABORTED) {
                    crate::diag::log(format_args!("accept an attach client: {e}"));
                    return;
                }
            }
        }
    }
}

impl Client {
    pub fn new(sock: UnixStream) -> Self {
        Client {
            sock,
            out: Vec::new(),
            sent: 0,
            frames: FrameReader::default(),
            input_done: false,
            output_closed: false,
            gone: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Gone: too far behind, or neither sending nor receiving any more. A client that
    /// closed its end right after sending (kapseld's resize connections) cannot take
    /// output, but what it sent is still read first.
    pub fn is_gone(&self) -> bool {
        self.gone || (self.output_closed && self.input_done)
    }

    /// Output cannot reach the client any more: what waits is dropped.
    fn close_output(&mut self) {
        self.output_closed = true;
        self.out = Vec::new();
        self.sent = 0;
    }

    pub fn has_output(&self) -> bool {
        self.sent < self.out.len()
    }

    /// The poll events of interest: input unless the client is done sending or the
    /// shim is not reading clients now (stdin backpressure), output while any waits.
    /// None when the client is best left out of this poll: its input must wait, and
    /// polling it would only report a hang-up over and over.
    pub fn events(&self, reading: bool) -> Option<i16> {
        let mut ev = 0;
        if reading && !self.input_done {
            ev |= libc::POLLIN;
        }
        if self.has_output() {
            ev |= libc::POLLOUT;
        }
        (ev != 0 || self.input_done).then_some(ev)
    }

    /// Sends (or queues) one frame of container output; marks the client gone if it is,
    /// or if it is too far behind.
    pub fn send(&mut self, stream: Stream, payload: &[u8]) {
        if self.gone || self.output_closed {
            return;
        }
        let head = header(stream as u8, payload.len());
        let mut written = 0;
        if !self.has_output() {
            let bufs = [IoSlice::new(&head), IoSlice::new(payload)];
            match (&self.sock).write_vectored(&bufs) {
                Ok(n) => written = n,
                Err(e) if retry_later(&e) => {}
                Err(_) => {
                    self.close_output();
                    return;
                }
            }
        }
        if written < head.len() {
            self.out.extend_from_slice(&head[written..]);
            self.out.extend_from_slice(payload);
        } else {
            self.out.extend_from_slice(&payload[written - head.len()..]);
        }
        if self.out.len() - self.sent > MAX_BACKLOG {
            self.gone = true;
        }
    }

    /// Writes what waits (marks the client gone if it is).
    pub fn flush(&mut self) {
        while self.has_output() && !self.gone {
            match (&self.sock).write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if retry_later(&e) => break,
                Err(_) => self.close_output(),
            }
        }
        if !self.has_output() {
            self.sent = 0;
            self.out.clear();
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            }
        } else if self.sent > KEEP_CAPACITY {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Gives back the output buffer if nothing waits in it.
    pub fn release_buffers(&mut self) {
        if !self.has_output() {
            self.out = Vec::new();
            self.sent = 0;
        }
    }

    /// Reads once and passes each request on (marks the client gone if it is). End of
    /// input is not the end of the client: it may still be reading output.
    pub fn receive(&mut self, buf: &mut [u8], mut on: impl FnMut(Request<'_>)) {
        match (&self.sock).read(buf) {
            Ok(0) => self.input_done = true,
            Ok(n) => self.frames.feed(&buf[..n], &mut on),
            Err(e) if retry_later(&e) => {}
            Err(_) => self.gone = true,
        }
    }

    /// After poll reported a hang-up or an error: a client that also finished sending
    /// is gone (one still sending is read to its end first).
    pub fn hung_up(&mut self) {
        if self.input_done {
            self.gone = true;
        }
    }

    pub fn input_done(&self) -> bool {
        self.input_done
    }

    /// The end of the stream: the client reads EOF after the last frame. Input it sent
    /// and the shim did not read is discarded first, as closing a unix socket with unread
    /// data makes the peer's read fail with ECONNRESET instead of ending cleanly.
    pub fn close(self) {
        let _ = self.sock.shutdown(Shutdown::Write);
        let mut scrap = [0u8; 512];
        while matches!((&self.sock).read(&mut scrap), Ok(1..)) {}
    }
}

fn retry_later(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `step` bytes; returns the requests as owned values.
    fn decode(data: &[u8], step: usize) -> Vec<String> {
        let mut r = FrameReader::default();
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            r.feed(piece, &mut |req| {
                out.push(match req {
                    Request::Stdin(d) => format!("in:{}", String::from_utf8_lossy(d)),
                    Request::CloseStdin => "close".into(),
                    Request::Resize { rows, cols } => format!("resize:{rows}x{cols}"),
                })
            });
        }
        out
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = header(kind, payload.len()).to_vec();
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn decodes_frames_split_anywhere() {
        let mut data = frame(0, b"hello");
        data.extend(frame(2, &[0, 40, 0, 132]));
        data.extend(frame(7, b"ignored"));
        data.extend(frame(0, b""));
        data.extend(frame(1, b""));
        let whole = decode(&data, data.len());
        assert_eq!(whole, ["in:hello", "resize:40x132", "close"]);
        let bytewise: Vec<String> = decode(&data, 1);
        assert_eq!(
            bytewise,
            [
                "in:h",
                "in:e",
                "in:l",
                "in:l",
                "in:o",
                "resize:40x132",
                "close"
            ]
        );
    }

    /// kapseld's resize connection writes its frame and closes: output meanwhile fails,
    /// and the frame is still read.
    #[test]
    fn a_client_that_closed_is_read_to_its_end() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut c = Client::new(ours);
        theirs.write_all(&frame(2, &[0, 24, 0, 80])).unwrap();
        drop(theirs);
        c.send(Stream::Stdout, b"prompt");
        assert!(!c.is_gone());
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !c.is_gone() {
            c.receive(&mut buf, |req| {
                if let Request::Resize { rows, cols } = req {
                    got.push((rows, cols));
                }
            });
        }
        assert_eq!(got, [(24, 80)]);
    }

    #[test]
    fn a_client_too_far_behind_is_dropped() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut c = Client::new(ours);
        let chunk = vec![b'x'; 8192];
        let mut sent = 0;
        while !c.is_gone() {
            c.send(Stream::Stdout, &chunk);
            sent += chunk.len();
            assert!(sent < 4 * MAX_BACKLOG, "never dropped");
        }
        assert!(sent >= MAX_BACKLOG - chunk.len());
    }

    #[test]
    fn frames_reach_the_client_in_order() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut c = Client::new(ours);
        c.send(Stream::Stdout, b"out");
        c.send(Stream::Stderr, b"err");
        c.flush();
        assert!(!c.is_gone());
        c.close();
        let mut got = Vec::new();
        (&theirs).read_to_end(&mut got).unwrap();
        let mut want = frame(1, b"out");
        want.extend(frame(2, b"err"));
        assert_eq!(got, want);
    }
}
