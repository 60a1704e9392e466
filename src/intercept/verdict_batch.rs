//! DROP verdicts for NFQUEUE in batches: one `NFQNL_MSG_VERDICT_BATCH` netlink message gives
//! the verdict to every packet of the queue whose id is at most the one named, so a drain of
//! many replies costs one `sendto(2)` instead of one per reply (the `nfq` crate sends
//! verdicts only one by one).
//!
//! The batch covers every packet still waiting up to that id, including any whose message
//! this process never read (the kernel's netlink buffer was full): those are dropped too
//! instead of holding a slot of the queue forever, which keeps the queue fail-closed.

use std::io;
use std::os::fd::RawFd;

/// `struct nlmsghdr` + `struct nfgenmsg` + one `struct nlattr` with a
/// `struct nfqnl_msg_verdict_hdr`.
const MESSAGE_LEN: usize = 16 + 4 + 4 + 8;

/// The netlink message that drops every packet of queue `queue` whose id is at most `last_id`.
/// Netlink headers are in host order, the nfnetlink payload in network order.
pub fn drop_through(queue: u16, last_id: u32) -> [u8; MESSAGE_LEN] {
    let mut message = [0u8; MESSAGE_LEN];
    let kind = ((libc::NFNL_SUBSYS_QUEUE as u16) << 8) | libc::NFQNL_MSG_VERDICT_BATCH as u16;
    message[0..4].copy_from_slice(&(MESSAGE_LEN as u32).to_ne_bytes());
    message[4..6].copy_from_slice(&kind.to_ne_bytes());
    message[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    // Sequence number and port id stay 0: no answer is asked for, and 0 is the kernel.
    message[16] = libc::AF_UNSPEC as u8;
    message[17] = libc::NFNETLINK_V0 as u8;
    message[18..20].copy_from_slice(&queue.to_be_bytes());
    let attribute_len = (MESSAGE_LEN - 20) as u16;
    message[20..22].copy_from_slice(&attribute_len.to_ne_bytes());
    message[22..24].copy_from_slice(&(libc::NFQA_VERDICT_HDR as u16).to_ne_bytes());
    message[24..28].copy_from_slice(&(libc::NF_DROP as u32).to_be_bytes());
    message[28..32].copy_from_slice(&last_id.to_be_bytes());
    message
}

/// Sends [`drop_through`]`(queue, last_id)` to the kernel on the queue's netlink socket `fd`.
pub fn send_drop_through(fd: RawFd, queue: u16, last_id: u32) -> io::Result<()> {
    let message = drop_through(queue, last_id);
    // SAFETY: an all-zero `sockaddr_nl` is valid; the family makes it the kernel's address.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    loop {
        // SAFETY: `message` and `kernel` are valid for reads of the sizes given.
        let sent = unsafe {
            libc::sendto(
                fd,
                message.as_ptr().cast(),
                message.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_drop_names_its_queue_and_last_id_in_network_order() {
        let message = drop_through(0x0102, 0x0a0b_0c0d);
        assert_eq!(u32::from_ne_bytes(message[0..4].try_into().unwrap()), 32);
        assert_eq!(
            u16::from_ne_bytes(message[4..6].try_into().unwrap()),
            0x0303
        );
        assert_eq!(u16::from_ne_bytes(message[6..8].try_into().unwrap()), 1);
        assert_eq!(message[8..16], [0; 8], "sequence number and port id");
        assert_eq!(
            message[16..20],
            [0, 0, 0x01, 0x02],
            "family, version, queue"
        );
        assert_eq!(u16::from_ne_bytes(message[20..22].try_into().unwrap()), 12);
        assert_eq!(u16::from_ne_bytes(message[22..24].try_into().unwrap()), 2);
        assert_eq!(message[24..28], [0, 0, 0, 0], "NF_DROP");
        assert_eq!(message[28..32], [0x0a, 0x0b, 0x0c, 0x0d]);
    }
}
