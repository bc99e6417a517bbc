//! Connectivity probe: an ARP request sent from a link through an AF_PACKET
//! socket, answered or not within a deadline. It checks the LAN path itself
//! (bridge, enslaved uplink, cable, switch), without depending on routes or
//! on the target answering ICMP.

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::error::{KernelError, Result};

const ETH_P_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// Requests are repeated this often: the first ones are lost while a new
/// bridge port is not forwarding yet.
const RESEND: Duration = Duration::from_millis(200);

/// Where to probe from: the link, its MAC and an IPv4 address of it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeFrom<'a> {
    pub index: u32,
    pub name: &'a str,
    pub mac: [u8; 6],
    pub source: Ipv4Addr,
}

/// An ARP probe socket bound to one link.
#[derive(Debug)]
pub struct ArpProbe {
    socket: OwnedFd,
    index: u32,
    name: String,
    target: Ipv4Addr,
    request: [u8; 28],
}

impl ArpProbe {
    /// Opens the socket. Like a netlink socket, a packet socket belongs to
    /// the network namespace of the thread that creates it: open it where
    /// the netlink sockets were opened, then [`ArpProbe::run`] it anywhere.
    pub fn open(from: ProbeFrom<'_>, target: Ipv4Addr) -> Result<ArpProbe> {
        let socket = open(from.index).map_err(|source| KernelError::Io {
            op: format!("open an ARP socket on {}", from.name),
            source,
        })?;
        Ok(ArpProbe {
            socket,
            index: from.index,
            name: from.name.to_string(),
            target,
            request: arp_request(from.mac, from.source, target),
        })
    }

    /// Whether the target answers within `timeout`. Blocking: run it off
    /// the async executor (`spawn_blocking`).
    pub fn run(self, timeout: Duration) -> Result<bool> {
        let target = self.target;
        let io_err = |source| KernelError::Io {
            op: format!("ARP probe of {target} from {}", self.name),
            source,
        };
        let deadline = Instant::now() + timeout;
        let mut next_send = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            if now >= next_send {
                send_broadcast(&self.socket, self.index, &self.request).map_err(io_err)?;
                next_send = now + RESEND;
            }
            let wait = next_send.min(deadline) - now;
            if !readable(&self.socket, wait).map_err(io_err)? {
                continue;
            }
            let len = recv(&self.socket, &mut buf).map_err(io_err)?;
            if is_reply_from(&buf[..len], target) {
                return Ok(true);
            }
        }
    }
}

/// An Ethernet/IPv4 ARP request (RFC 826), without the Ethernet header
/// (the SOCK_DGRAM packet socket adds it).
fn arp_request(mac: [u8; 6], source: Ipv4Addr, target: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&source.octets());
    // Target hardware address unknown: zeros.
    p[24..28].copy_from_slice(&target.octets());
    p
}

fn is_reply_from(packet: &[u8], target: Ipv4Addr) -> bool {
    packet.len() >= 28
        && packet[0..2] == 1u16.to_be_bytes()
        && packet[2..4] == 0x0800u16.to_be_bytes()
        && packet[6..8] == ARP_REPLY.to_be_bytes()
        && packet[14..18] == target.octets()
}

fn link_address(index: u32, mac: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = index as i32;
    if let Some(mac) = mac {
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac);
    }
    addr
}

fn open(index: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscalls; the descriptor is owned right after creation.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = OwnedFd::from_raw_fd(fd);
        let addr = link_address(index, None);
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        );
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }
}

fn send_broadcast(socket: &OwnedFd, index: u32, packet: &[u8]) -> io::Result<()> {
    let addr = link_address(index, Some([0xff; 6]));
    // SAFETY: the buffer and address outlive the call.
    let rc = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn readable(socket: &OwnedFd, wait: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1);
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        n if n < 0 => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            }
        }
        n => Ok(n > 0),
    }
}

fn recv(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_and_reply_match() {
        let source = Ipv4Addr::new(10, 0, 0, 10);
        let target = Ipv4Addr::new(10, 0, 0, 1);
        let req = arp_request([2, 0, 0, 0, 0, 1], source, target);
        assert_eq!(&req[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&req[24..], &[10, 0, 0, 1]);
        assert!(!is_reply_from(&req, target), "a request is no reply");
        let mut reply = req;
        reply[7] = 2;
        reply[14..18].copy_from_slice(&target.octets());
        assert!(is_reply_from(&reply, target));
        assert!(!is_reply_from(&reply, source));
        assert!(!is_reply_from(&reply[..20], target));
    }
}
