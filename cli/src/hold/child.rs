//! The command `hold` runs: started in a process group of its own, so signals reach
//! everything it started; stopped when its holder loses the lease, and killed, group and
//! all, when its holder dies (see [`super::reaper`]).

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use super::reaper;

/// A running command, the leader of its own process group.
pub struct Child {
    child: tokio::process::Child,
    pgid: libc::pid_t,
    /// The command's group was given the terminal (hold was in its foreground): hold
    /// takes it back when the command ends.
    terminal: bool,
}

/// Whether stdin is a terminal whose foreground process group is hold's: then the command
/// gets the terminal, so it can prompt and read (`terraform apply` asking for "yes") and
/// Ctrl-C reaches it directly.
fn owns_terminal() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read process and terminal state.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

/// Make `pgid` the terminal's foreground group. SIGTTOU is ignored around the call, since
/// a background group (the command's before, hold's after) that sets it gets SIGTTOU.
/// Async-signal-safe: used in the child before exec too.
fn give_terminal(pgid: libc::pid_t) {
    // SAFETY: signal and tcsetpgrp are async-signal-safe; the previous disposition is
    // restored, so the command starts with the one it inherited.
    unsafe {
        let previous = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(libc::STDIN_FILENO, pgid);
        libc::signal(libc::SIGTTOU, previous);
    }
}

/// Start `argv` with `env` added to the environment, in a new process group, whose id the
/// new process writes to the reaper's pipe `reaper_fd` before `exec`. On Linux the direct
/// child also gets SIGKILL from the kernel if `hold` dies first (`PR_SET_PDEATHSIG`), which
/// covers a death before that write; the reaper covers the rest of the group.
pub fn spawn(argv: &[String], env: &[(String, String)], reaper_fd: RawFd) -> io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command"))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.process_group(0);
    let terminal = owns_terminal();
    if terminal {
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions. The child takes the terminal itself, before exec,
        // so the command never reads it from a background group (and stops on SIGTTIN).
        unsafe {
            command.pre_exec(|| {
                give_terminal(libc::getpgrp());
                Ok(())
            });
        }
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (prctl, getppid), allocating nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between the fork and the prctl: then the
                // signal never comes, so do not start the command at all.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                reaper::announce_group(reaper_fd)
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: the closure runs in the forked child before exec; announce_group calls
        // only async-signal-safe functions and allocates nothing.
        unsafe {
            command.pre_exec(move || reaper::announce_group(reaper_fd));
        }
    }
    let child = command.spawn()?;
    let pgid = child
        .id()
        .and_then(|id| libc::pid_t::try_from(id).ok())
        .ok_or_else(|| io::Error::other("the command exited before its id was read"))?;
    if terminal {
        // Also from this side, as shells do, whichever runs first.
        give_terminal(pgid);
    }
    Ok(Child {
        child,
        pgid,
        terminal,
    })
}

impl Child {
    /// Send `signal` to the command's whole process group. A group already gone is not an
    /// error: there is nothing left to stop.
    pub fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions; a negative pid names a group.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    /// Wait for the command to exit. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Take the terminal back, if the command was given it.
    pub fn take_terminal(&mut self) {
        if std::mem::take(&mut self.terminal) {
            // SAFETY: getpgrp has no preconditions.
            give_terminal(unsafe { libc::getpgrp() });
        }
    }

    /// Stop the command: SIGTERM to its group, SIGKILL after `grace` if it has not exited
    /// by then. Returns its status and whether SIGKILL was needed.
    pub async fn stop(&mut self, grace: Duration) -> (io::Result<ExitStatus>, bool) {
        self.signal_group(libc::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                self.signal_group(libc::SIGKILL);
                (self.child.wait().await, true)
            }
        }
    }
}

/// The exit code a shell would give for `status`: the command's own code, or 128 + the
/// signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        (None, None) => 255,
    }
}
