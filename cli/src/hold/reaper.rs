//! The reaper: a small second process that sends SIGKILL to the command's process group
//! when `hold` dies without saying it is done (`kill -9`, the OOM killer, a crash).
//!
//! Why it exists: `PR_SET_PDEATHSIG` (Linux) stops only the command's direct child. What
//! that child started, such as `terraform` under `sh -c 'terraform apply'`, would keep
//! running in the group with nobody renewing the lease, and the next holder could write the
//! same entity at the same time.
//!
//! How: before the command starts, hold creates a pipe whose write end only hold holds
//! (close-on-exec, so neither the reaper nor the command inherits it past `exec`), and
//! re-executes its own binary (`/proc/self/exe` on Linux) as `writelane hold
//! --internal-reaper`, a hidden flag, with the read end as stdin. The reaper runs in a
//! process group of its own, so signals for hold's group or the command's (Ctrl-C,
//! forwarded signals) do not reach it, and it ignores SIGINT and SIGHUP. Messages on the
//! pipe:
//!
//! - `P` and the command's process group id (4 bytes, native order), written by the
//!   command's own process between `fork` and `exec`, after it made its group (and, on
//!   Linux, armed `PR_SET_PDEATHSIG`). So the reaper knows the group before the command
//!   can start anything. There is no window in which hold's death goes unseen: the reaper
//!   starts before the command's `fork`, and the forked process holds its own copy of the
//!   write end until `exec` closes it, so end of file cannot come before the group was
//!   written (or the process failed to start).
//! - `D`, written by hold when it has dealt with the command itself (the command exited,
//!   was stopped after a lost lease, or never started): the reaper exits without killing.
//!
//! End of file before `D` means every copy of the write end is closed, so hold is gone:
//! the reaper sends SIGKILL to the group, if it learned one, and exits. End of file on a
//! pipe works on every Unix, with no `prctl`, so the guarantee is the same on macOS and the
//! BSDs. Neither hold nor the reaper panics on this path; the reaper holds no lease, reads
//! no store, and lives exactly as long as hold's command.
//!
//! Why not the alternatives: `PR_SET_CHILD_SUBREAPER` on hold makes orphans hold's
//! children, but dies with hold, so it does nothing for `kill -9`. A cgroup would catch
//! processes that leave the group (`setsid`), but needs a writable cgroup tree (root or a
//! systemd delegation), which CI runners and containers seldom give.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

/// The hidden flag of `writelane hold` that runs the reaper instead of a hold.
pub const FLAG: &str = "internal-reaper";

/// The message tag before the command's process group id.
const GROUP: u8 = b'P';
/// The message that hold is done with the command: the reaper exits without killing.
const DONE: u8 = b'D';
/// Bytes of a group message: the tag and a native-order `pid_t`.
const GROUP_MESSAGE_LEN: usize = 1 + std::mem::size_of::<libc::pid_t>();

/// How long hold waits for the reaper to exit after `D`; it exits at once when it has
/// started, so this only bounds a reaper that is somehow stuck.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// A running reaper, from hold's side.
pub struct Reaper {
    /// The pipe's write end: closing it without [`DONE`] (hold's death) is the signal.
    write: OwnedFd,
    process: tokio::process::Child,
}

/// Start the reaper. It learns the command's group from the command's own process (see
/// [`announce_group`]).
pub fn start() -> io::Result<Reaper> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe writes two new descriptors into the array it is given.
    #[cfg(target_os = "linux")]
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: as above; close-on-exec is set at once below, and hold starts no other
    // process meanwhile (its runtime has one thread).
    let made = unsafe {
        let made = libc::pipe(fds.as_mut_ptr());
        if made == 0 {
            libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
        }
        made
    };
    if made != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let program = if cfg!(target_os = "linux") {
        // The running binary itself, even if its file was replaced or deleted since.
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let mut command = tokio::process::Command::new(program);
    command
        .arg0("writelane")
        .arg("hold")
        .arg(format!("--{FLAG}"))
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0);
    let process = command.spawn()?;
    Ok(Reaper { write, process })
}

impl Reaper {
    /// The write end, for [`announce_group`] in the command's process before `exec`.
    pub fn announce_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Tell the reaper hold is done with the command, and wait (briefly) for it to exit.
    /// Called only once the command's group has been dealt with: the reaper kills nothing.
    pub async fn finish(mut self) {
        // SAFETY: write reads one byte from a live buffer into our own descriptor. A failed
        // write (the reaper already gone) leaves nothing to tell: hold ignores SIGPIPE.
        unsafe {
            libc::write(self.write.as_raw_fd(), [DONE].as_ptr().cast(), 1);
        }
        drop(self.write);
        let _ = tokio::time::timeout(EXIT_WAIT, self.process.wait()).await;
    }
}

/// Write the calling process's group to the reaper's pipe `fd`. Runs in the command's
/// process between `fork` and `exec`, after it made its own group: only async-signal-safe
/// calls, no allocation. SIGPIPE is ignored around the write, so a reaper already gone
/// fails the start (EPIPE) rather than killing the command's process silently.
pub fn announce_group(fd: RawFd) -> io::Result<()> {
    // SAFETY: getpgrp has no preconditions.
    let group = unsafe { libc::getpgrp() };
    let mut message = [0u8; GROUP_MESSAGE_LEN];
    message[0] = GROUP;
    message[1..].copy_from_slice(&group.to_ne_bytes());
    // SAFETY: signal and write are async-signal-safe; the previous SIGPIPE disposition is
    // restored. A pipe write of at most PIPE_BUF bytes is atomic: all of it or none.
    unsafe {
        let previous = libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let result = loop {
            let n = libc::write(fd, message.as_ptr().cast(), message.len());
            if n == message.len() as isize {
                break Ok(());
            }
            let error = io::Error::last_os_error();
            if n < 0 && error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break Err(if n < 0 {
                error
            } else {
                io::Error::from_raw_os_error(libc::EIO)
            });
        };
        libc::signal(libc::SIGPIPE, previous);
        result
    }
}

/// What the reaper learned from its stdin so far.
#[derive(Debug, Default, PartialEq)]
struct Heard {
    group: Option<libc::pid_t>,
    done: bool,
    /// Bytes of a group message not yet complete.
    partial: Vec<u8>,
}

impl Heard {
    /// Take in bytes read from the pipe. Unknown bytes are skipped: only hold and its
    /// command write here.
    fn take(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if !self.partial.is_empty() {
                self.partial.push(byte);
                if self.partial.len() == GROUP_MESSAGE_LEN {
                    let mut id = [0u8; GROUP_MESSAGE_LEN - 1];
                    id.copy_from_slice(&self.partial[1..]);
                    self.group = Some(libc::pid_t::from_ne_bytes(id));
                    self.partial.clear();
                }
            } else if byte == GROUP {
                self.partial.push(byte);
            } else if byte == DONE {
                self.done = true;
            }
        }
    }

    /// The group to kill at end of file: a real group id only. Never 0 or 1 or below,
    /// which `kill` reads as "our own group" or "every process".
    fn group_to_kill(&self) -> Option<libc::pid_t> {
        self.group.filter(|&g| g > 1 && !self.done)
    }
}

/// The reaper's process: read stdin until `D` (exit) or end of file (SIGKILL the group,
/// exit).
pub fn serve() -> ExitCode {
    // SAFETY: setting dispositions before any thread starts. Ctrl-C on hold's terminal and
    // a hang-up must not end the reaper while the command may still run.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut heard = Heard::default();
    let mut buffer = [0u8; 64];
    loop {
        // SAFETY: read writes at most buffer.len() bytes into the buffer.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n > 0 {
            heard.take(&buffer[..n as usize]);
            if heard.done {
                return ExitCode::SUCCESS;
            }
            continue;
        }
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // End of file (or a pipe that cannot be read, which means the same: nobody is
        // left to say "done").
        break;
    }
    if let Some(group) = heard.group_to_kill() {
        // SAFETY: kill has no memory-safety preconditions; a negative pid names a group.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_message(group: libc::pid_t) -> Vec<u8> {
        let mut m = vec![GROUP];
        m.extend_from_slice(&group.to_ne_bytes());
        m
    }

    #[test]
    fn a_group_then_end_of_file_is_killed() {
        let mut heard = Heard::default();
        let m = group_message(4242);
        // Split across reads.
        heard.take(&m[..2]);
        assert_eq!(heard.group_to_kill(), None);
        heard.take(&m[2..]);
        assert_eq!(heard.group_to_kill(), Some(4242));
    }

    #[test]
    fn done_means_nothing_is_killed() {
        let mut heard = Heard::default();
        heard.take(&group_message(4242));
        heard.take(&[DONE]);
        assert!(heard.done);
        assert_eq!(heard.group_to_kill(), None);
    }

    #[test]
    fn no_group_or_a_special_id_is_never_killed() {
        let mut heard = Heard::default();
        assert_eq!(heard.group_to_kill(), None);
        for special in [-1, 0, 1] {
            heard.take(&group_message(special));
            assert_eq!(heard.group_to_kill(), None, "{special}");
        }
    }
}
