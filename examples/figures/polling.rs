//! A stream endpoint that polls before it sleeps, as aemp's threads do:
//! the fair baseline for aemp's round trips (a blocking endpoint pays for
//! waking a sleeping thread on every message, which aemp avoids while
//! traffic flows).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Streams that can switch between blocking and non-blocking mode.
pub trait Mode: Read + Write {
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
}

impl Mode for TcpStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, on)
    }
}

impl Mode for UnixStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, on)
    }
}

/// Reads poll (non-blocking reads, yielding the CPU between them) for up
/// to `budget` before they block, as aemp's reactor, dispatcher and
/// mailboxes do with `Config::busy_wait`.
pub struct Polling<S: Mode> {
    s: S,
    budget: Duration,
    nonblocking: bool,
}

impl<S: Mode> Polling<S> {
    pub fn new(s: S, budget: Duration) -> Polling<S> {
        Polling {
            s,
            budget,
            nonblocking: false,
        }
    }

    fn mode(&mut self, on: bool) -> io::Result<()> {
        if self.nonblocking != on {
            self.s.set_nonblocking(on)?;
            self.nonblocking = on;
        }
        Ok(())
    }

    pub fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut got = 0;
        let start = Instant::now();
        while got < buf.len() {
            let polling = start.elapsed() < self.budget;
            self.mode(polling)?;
            match self.s.read(&mut buf[got..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.s.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// aemp's default busy-wait budget, which the polling baselines use too.
pub fn budget() -> Duration {
    aemp::Config::default().busy_wait
}
