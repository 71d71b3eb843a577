//! A safe client of SWUpdate's IPC (libswupdate): start an install, stream the bundle into the
//! daemon, follow its progress, read the final outcome. Every call blocks; async callers run it
//! on a blocking thread. The daemon's sockets are found the way libswupdate finds them
//! (`$TMPDIR` when set, else `/tmp`), so a test can run a private daemon next to the real one.
//!
//! The outcome is judged from the progress channel (SUCCESS / FAILURE), never from a CLI exit
//! code: `swupdate -i` exits 1 after a successful install about one run in eight (seen while testing against Debian 12's SWUpdate 2022.12).

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use swupdate_sys as sys;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("cannot reach the SWUpdate daemon (is swupdate running? socket {0})")]
    NotRunning(String),
    #[error("SWUpdate refused to start an install (another one running?)")]
    Refused,
    #[error("streaming the bundle into SWUpdate failed after {0} bytes")]
    Send(u64),
    #[error("the progress channel closed before the install ended")]
    ProgressLost,
    #[error("install failed: {0}")]
    Failed(String),
}

/// Where the daemon's control socket is expected.
pub fn ctrl_socket() -> String {
    // SAFETY: libswupdate returns a pointer to a static or heap string it owns, NUL-terminated.
    unsafe { cstr(sys::get_ctrl_socket()) }
}

unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

fn text(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An install in progress: bytes written with [`Install::write`], ended by [`Install::finish`].
pub struct Install {
    fd: c_int,
    sent: u64,
}

impl Install {
    /// Asks the daemon to accept a new bundle. `info` is free text shown in its logs.
    pub fn start(info: &str) -> Result<Install, Error> {
        let mut req = sys::swupdate_request::default();
        // SAFETY: `req` is a valid, owned struct the library fills with its defaults.
        unsafe { sys::swupdate_prepare_req(&mut req) };
        req.source = sys::sourcetype::SOURCE_LOCAL;
        for (i, b) in info.bytes().take(req.info.len() - 1).enumerate() {
            req.info[i] = b as c_char;
        }
        req.len = info.len().min(req.info.len() - 1);
        // SAFETY: the pointer and size describe `req`, which outlives the call.
        let fd =
            unsafe { sys::ipc_inst_start_ext(&mut req as *mut _ as *mut c_void, std::mem::size_of::<sys::swupdate_request>() as isize) };
        match fd {
            fd if fd >= 0 => Ok(Install { fd, sent: 0 }),
            -1 if !std::path::Path::new(&ctrl_socket()).exists() => Err(Error::NotRunning(ctrl_socket())),
            _ => Err(Error::Refused),
        }
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(64 * 1024) {
            // SAFETY: `chunk` is valid for its length; libswupdate only reads it.
            let r = unsafe { sys::ipc_send_data(self.fd, chunk.as_ptr() as *mut c_char, chunk.len() as c_int) };
            if r < 0 {
                return Err(Error::Send(self.sent));
            }
            self.sent += chunk.len() as u64;
        }
        Ok(())
    }

    /// Ends the stream; the daemon goes on to verify and install (follow it with [`Progress`]).
    pub fn finish(mut self) -> u64 {
        self.close();
        self.sent
    }

    fn close(&mut self) {
        if self.fd >= 0 {
            // SAFETY: fd came from ipc_inst_start_ext and is closed once.
            unsafe { sys::ipc_end(self.fd) };
            self.fd = -1;
        }
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Start,
    Run,
    Success,
    Failure,
    Download,
    Done,
    Subprocess,
    Progress,
}

/// One progress message of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressMsg {
    pub state: State,
    pub nsteps: u32,
    pub cur_step: u32,
    pub cur_percent: u32,
    pub image: String,
    pub handler: String,
    pub info: String,
}

/// The daemon's progress channel (connect before starting an install to see all of it).
pub struct Progress {
    fd: c_int,
}

impl Progress {
    pub fn connect() -> Result<Progress, Error> {
        // SAFETY: plain call; returns a socket fd or a negative value.
        let fd = unsafe { sys::progress_ipc_connect(false) };
        if fd < 0 {
            // SAFETY: as in ctrl_socket().
            return Err(Error::NotRunning(unsafe { cstr(sys::get_prog_socket()) }));
        }
        // A silent daemon must not hang us: receive() gives up after this, wait() then asks the
        // daemon for its last result.
        // SAFETY: fd is an open socket owned by this Progress for its whole life.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = nix::sys::socket::setsockopt(&bfd, nix::sys::socket::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(SILENCE_S, 0));
        Ok(Progress { fd })
    }

    pub fn receive(&mut self) -> Result<ProgressMsg, Error> {
        let mut msg = sys::progress_msg::default();
        // SAFETY: `msg` is a valid buffer; the library writes at most one message into it.
        let r = unsafe { sys::progress_ipc_receive(&mut self.fd, &mut msg) };
        if r <= 0 {
            return Err(Error::ProgressLost);
        }
        use sys::RECOVERY_STATUS as R;
        let state = match msg.status {
            R::IDLE => State::Idle,
            R::START => State::Start,
            R::RUN => State::Run,
            R::SUCCESS => State::Success,
            R::FAILURE => State::Failure,
            R::DOWNLOAD => State::Download,
            R::DONE => State::Done,
            R::SUBPROCESS => State::Subprocess,
            R::PROGRESS => State::Progress,
        };
        let infolen = (msg.infolen as usize).min(msg.info.len());
        Ok(ProgressMsg {
            state,
            nsteps: msg.nsteps,
            cur_step: msg.cur_step,
            cur_percent: msg.cur_percent,
            image: text(&msg.cur_image),
            handler: text(&msg.hnd_name),
            info: text(&msg.info[..infolen]),
        })
    }

    /// Reads until the install ends; `on` sees every message. Ok on SUCCESS, the daemon's last
    /// words on FAILURE.
    ///
    /// After `SILENCE_S` without a message it asks the daemon directly (an early refusal may end
    /// without the START this waits for), at most `MAX_SILENCES` times.
    pub fn wait(&mut self, mut on: impl FnMut(&ProgressMsg)) -> Result<(), Error> {
        let mut started = false;
        let mut silences = 0;
        loop {
            let m = match self.receive() {
                Ok(m) => m,
                Err(Error::ProgressLost) if silences < MAX_SILENCES => {
                    silences += 1;
                    match idle_result() {
                        Some(true) => return Ok(()),
                        Some(false) => return Err(Error::Failed(last_error().unwrap_or_else(|| "refused".into()))),
                        None => continue,
                    }
                }
                Err(e) => return Err(e),
            };
            on(&m);
            match m.state {
                State::Start | State::Run | State::Progress => started = true,
                State::Success if started => return Ok(()),
                State::Failure if started => return Err(Error::Failed(last_error().unwrap_or(m.info))),
                _ => {}
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: the fd is ours and closed once.
            unsafe { libc_close(self.fd) };
        }
    }
}

extern "C" {
    #[link_name = "close"]
    fn libc_close(fd: c_int) -> c_int;
}

const SILENCE_S: i64 = 30;
const MAX_SILENCES: u32 = 20;

/// When the daemon is idle: whether its last install succeeded.
fn idle_result() -> Option<bool> {
    let mut msg = sys::ipc_message::default();
    // SAFETY: `msg` is a valid, owned buffer for one IPC answer.
    if unsafe { sys::ipc_get_status_timeout(&mut msg, 1000) } < 0 {
        return None;
    }
    // SAFETY: a GET_STATUS answer fills the `status` member of the union.
    let (cur, last) = unsafe { (msg.data.status.current, msg.data.status.last_result) };
    use sys::RECOVERY_STATUS as R;
    (cur == R::IDLE as i32).then_some(last == R::SUCCESS as i32).filter(|_| last == R::SUCCESS as i32 || last == R::FAILURE as i32)
}

/// The daemon's description of the last error, if it has one.
pub fn last_error() -> Option<String> {
    let mut msg = sys::ipc_message::default();
    // SAFETY: `msg` is a valid, owned buffer for one IPC answer.
    let r = unsafe { sys::ipc_get_status_timeout(&mut msg, 1000) };
    if r < 0 {
        return None;
    }
    // SAFETY: the daemon answered GET_STATUS, so the `status` member of the union is the live one.
    let desc = unsafe { text(&msg.data.status.desc) };
    (!desc.is_empty()).then_some(desc)
}

/// Sets the daemon's version checks (what `-N`, `--max-version` and `-R` set at its start): a
/// bundle older than `minimum`, newer than `maximum`, or equal to `current` is refused. An empty
/// text leaves that check as it was (the daemon cannot switch a check off, only move it). The
/// setting lasts until the daemon restarts.
pub fn set_version_range(minimum: &str, maximum: &str, current: &str) -> Result<(), Error> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| Error::Failed(format!("version {s:?} holds a NUL byte")));
    let (min, max, cur) = (c(minimum)?, c(maximum)?, c(current)?);
    // SAFETY: three valid NUL-terminated strings that outlive the call; libswupdate copies them.
    let r = unsafe { sys::swupdate_set_version_range(min.as_ptr(), max.as_ptr(), cur.as_ptr()) };
    if r != 0 {
        return Err(Error::NotRunning(ctrl_socket()));
    }
    Ok(())
}

/// Streams a whole bundle and waits for the outcome.
pub fn install(bundle: &mut impl std::io::Read, info: &str, on: impl FnMut(&ProgressMsg)) -> Result<(), Error> {
    let mut progress = Progress::connect()?;
    // Right after an install ends the daemon needs a moment before it takes the next one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut inst = loop {
        match Install::start(info) {
            Err(Error::Refused) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(100)),
            r => break r?,
        }
    };
    let mut buf = vec![0u8; 256 * 1024];
    // The daemon closes the stream as soon as it rejects the bundle (bad signature, wrong
    // digest); its reason then arrives on the progress channel.
    let mut send_error = None;
    loop {
        let n = match bundle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => {
                send_error = Some(Error::Send(inst.sent));
                break;
            }
        };
        if let Err(e) = inst.write(&buf[..n]) {
            send_error = Some(e);
            break;
        }
    }
    inst.finish();
    match (progress.wait(on), send_error) {
        (Ok(()), Some(e)) => Err(e),
        (r, _) => r,
    }
}
