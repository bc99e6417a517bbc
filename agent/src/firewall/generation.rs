//! The nftables ruleset generation: a counter the kernel bumps on every
//! committed nftables transaction in a network namespace (NFT_MSG_GETGEN).
//! While it stays the same, no table changed, so an observation made at
//! that generation still holds and listing our table again (an `nft` run of
//! some 30 ms for 50 networks) can be skipped.
//!
//! The key also holds the boot and the namespace's cookie (never reused
//! within a boot): a generation number alone could match in a namespace
//! made anew.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Where and when an observation was made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenerationKey {
    pub boot_id: String,
    pub netns_cookie: u64,
    pub generation: u32,
}

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const SO_NETNS_COOKIE: libc::c_int = 71;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// The current key of the calling thread's network namespace.
pub fn current() -> io::Result<GenerationKey> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string();
    let socket = netfilter_socket()?;
    let netns_cookie = netns_cookie(&socket)?;
    let generation = request_generation(&socket)?;
    Ok(GenerationKey {
        boot_id,
        netns_cookie,
        generation,
    })
}

fn netfilter_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn netns_cookie(socket: &OwnedFd) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len point at valid memory of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

fn request_generation(socket: &OwnedFd) -> io::Result<u32> {
    let mut request = Vec::with_capacity(NLMSG_HDRLEN + NFGENMSG_LEN);
    request.extend_from_slice(&((NLMSG_HDRLEN + NFGENMSG_LEN) as u32).to_ne_bytes());
    request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    request.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]); // nfgenmsg
                                                                  // SAFETY: the buffer is valid for its length; the socket is unconnected
                                                                  // netlink, whose default destination is the kernel.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = vec![0u8; 256];
    // SAFETY: the buffer is valid and writable for its length.
    let received = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            0,
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_generation(&reply[..received as usize])
}

/// The NFTA_GEN_ID of a NEWGEN reply (or the error of an NLMSG_ERROR).
fn parse_generation(reply: &[u8]) -> io::Result<u32> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let u16_at = |i: usize| {
        reply
            .get(i..i + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |i: usize| {
        reply
            .get(i..i + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let len = u32_at(0).ok_or_else(|| invalid("short netlink reply"))? as usize;
    let kind = u16_at(4).ok_or_else(|| invalid("short netlink reply"))?;
    if kind == NLMSG_ERROR {
        let errno = u32_at(NLMSG_HDRLEN).map_or(0, |e| e as i32);
        return Err(io::Error::from_raw_os_error(-errno));
    }
    let end = len.min(reply.len());
    let mut at = NLMSG_HDRLEN + NFGENMSG_LEN;
    while at + 4 <= end {
        let attr_len = u16_at(at).unwrap_or(0) as usize;
        let attr_kind = u16_at(at + 2).unwrap_or(0) & 0x3fff;
        if attr_len < 4 {
            break;
        }
        if attr_kind == NFTA_GEN_ID && attr_len >= 8 {
            // Attribute payloads of nfnetlink are big-endian.
            if let Some(b) = reply.get(at + 4..at + 8) {
                return Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
        }
        at += (attr_len + 3) & !3;
    }
    Err(invalid("no NFTA_GEN_ID in the NEWGEN reply"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![0u8; NFGENMSG_LEN];
        for (kind, payload) in attrs {
            body.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(payload);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | 15).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 10]);
        msg.extend_from_slice(&body);
        msg
    }

    /// Needs root: runs in a network namespace of its own thread (`nft`,
    /// forked from that thread, runs there too).
    #[test]
    #[ignore = "needs root (a network namespace) and nft: scripts/test.sh runs it"]
    fn generation_moves_with_each_nftables_commit_and_only_then() {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("needs root: unshare(CLONE_NEWNET)");
            let before = current().unwrap();
            assert_eq!(current().unwrap(), before, "no commit, same key");
            let status = std::process::Command::new("nft")
                .args(["add", "table", "inet", "generation_test"])
                .status()
                .expect("run nft");
            assert!(status.success());
            let after = current().unwrap();
            assert!(after.generation > before.generation, "{before:?} {after:?}");
            assert_eq!(after.netns_cookie, before.netns_cookie);
            assert_eq!(after.boot_id, before.boot_id);
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            assert_ne!(current().unwrap().netns_cookie, before.netns_cookie);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn generation_is_read_from_its_attribute_among_others() {
        let msg = reply(&[
            (3, b"nft\0"),
            (NFTA_GEN_ID, &7u32.to_be_bytes()),
            (2, &[0; 4]),
        ]);
        assert_eq!(parse_generation(&msg).unwrap(), 7);
    }

    #[test]
    fn replies_without_the_attribute_or_truncated_are_errors_not_panics() {
        assert!(parse_generation(&reply(&[(3, b"nft\0")])).is_err());
        let msg = reply(&[(NFTA_GEN_ID, &7u32.to_be_bytes())]);
        for cut in 0..msg.len() - 1 {
            let _ = parse_generation(&msg[..cut]);
        }
    }
}
