//! The one `poll(2)` wrapper that copy's shards and intercept's loop wait in.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// An entry asking for `events` on `fd`.
pub fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits until an entry of `fds` is ready or `timeout` passes (millisecond resolution,
/// rounded up so that a deadline is never missed by a spin). Returns false when a signal
/// interrupted the wait: the entries' `revents` then mean nothing.
pub fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<bool> {
    let millis =
        libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
    let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a valid slice of `count` pollfd structures.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, millis) };
    if ready < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(err),
        };
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn reports_a_readable_descriptor_and_times_out_on_an_idle_one() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut fds = [pollfd(b.as_raw_fd(), libc::POLLIN)];
        assert!(poll(&mut fds, Duration::ZERO).unwrap());
        assert_eq!(fds[0].revents, 0);
        a.send(b"x").unwrap();
        assert!(poll(&mut fds, Duration::from_millis(100)).unwrap());
        assert_eq!(fds[0].revents & libc::POLLIN, libc::POLLIN);
    }
}
