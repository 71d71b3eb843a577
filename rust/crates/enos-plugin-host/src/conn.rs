//! The connections a driver may open: the endpoints its device configuration names, TCP or a
//! serial port, read with a deadline.

use crate::bindings::enos::driver::connections::IoError;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// `host:port`.
    Tcp(String),
    /// A serial line, raw, 8 data bits, the given baud and parity (`N`, `E`, `O`).
    Serial { port: PathBuf, baud: u32, parity: char },
}

impl Endpoint {
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Tcp(_) => "TCP",
            Endpoint::Serial { .. } => "serial",
        }
    }
}

pub(crate) enum Conn {
    Tcp(TcpStream),
    Serial(File),
}

impl Conn {
    pub(crate) fn open(ep: &Endpoint, timeout: Duration) -> Result<Conn, String> {
        match ep {
            Endpoint::Tcp(a) => {
                let addr = a.to_socket_addrs().map_err(|e| format!("{a}: {e}"))?.next().ok_or_else(|| format!("{a}: no address"))?;
                let s = TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1))).map_err(|e| format!("{a}: {e}"))?;
                s.set_nodelay(true).ok();
                Ok(Conn::Tcp(s))
            }
            Endpoint::Serial { port, baud, parity } => {
                let f = serial_open(port, *baud, *parity).map_err(|e| format!("{}: {e}", port.display()))?;
                Ok(Conn::Serial(f))
            }
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Serial(f) => f.as_raw_fd(),
        }
    }

    /// Up to `max` bytes, waiting at most `wait` for the first.
    pub(crate) fn read(&mut self, max: usize, wait: Duration) -> Result<Vec<u8>, IoError> {
        if !wait_readable(self.fd(), wait) {
            return Err(IoError::TimedOut);
        }
        let mut buf = vec![0; max.max(1)];
        let n = match self {
            Conn::Tcp(s) => s.read(&mut buf),
            Conn::Serial(f) => f.read(&mut buf),
        };
        match n {
            Ok(0) => Err(IoError::Closed),
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(IoError::TimedOut),
            Err(_) => Err(IoError::Closed),
        }
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), IoError> {
        let r = match self {
            Conn::Tcp(s) => s.write_all(data),
            Conn::Serial(f) => f.write_all(data),
        };
        r.map_err(|_| IoError::Closed)
    }
}

/// Waits until `fd` has something to read (or was closed), at most `wait`.
pub(crate) fn wait_readable(fd: RawFd, wait: Duration) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

fn serial_open(port: &std::path::Path, baud: u32, parity: char) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(port)?;
    let speed = match baud {
        300 => libc::B300,
        600 => libc::B600,
        1200 => libc::B1200,
        2400 => libc::B2400,
        4800 => libc::B4800,
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115200 => libc::B115200,
        _ => return Err(std::io::Error::new(ErrorKind::InvalidInput, format!("{baud} baud is not a supported rate"))),
    };
    // SAFETY: termios calls on the descriptor we just opened, with a zeroed struct they fill.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(f.as_raw_fd(), &mut t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        libc::cfsetspeed(&mut t, speed);
        t.c_cflag |= libc::CLOCAL | libc::CREAD;
        match parity {
            'E' => t.c_cflag |= libc::PARENB,
            'O' => t.c_cflag |= libc::PARENB | libc::PARODD,
            _ => {}
        }
        if libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(f)
}
