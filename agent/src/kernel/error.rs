//! Errors of the kernel layer: every error names the operation and the object
//! ("add address 192.168.10.1/24 to virbr-nat (index 7)") and, when the kernel
//! refused, its errno and extended-ack message, so callers can both report it
//! verbatim and match on it (`errno() == Some(libc::EEXIST)`).

use std::io;

use rtnetlink::packet_core::ErrorMessage;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel answered the request with an error (a netlink NACK).
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*errno), fmt_detail(detail))]
    Refused {
        op: String,
        /// Positive errno value (`libc::EEXIST`, `libc::ERANGE`, ...).
        errno: i32,
        /// The kernel's extended-ack message, when it gave one.
        detail: Option<String>,
    },
    /// The netlink conversation failed (connection gone, undecodable or
    /// unexpected message), as opposed to a refusal by the kernel.
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// A system call or a /proc/sys file access failed.
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// The object does not exist on this host, typically an IPv6 sysctl when
    /// IPv6 is disabled (`ipv6.disable=1`) or a per-device sysctl of a device
    /// that is gone. Not a crash: observation reports such values as absent.
    #[error("{op}: not available: {reason}")]
    Unavailable { op: String, reason: String },
    /// A request that cannot be encoded (an IPv6 route via an IPv4 gateway,
    /// a device name that is not one path component), or an answer that
    /// makes no sense.
    #[error("{op}: {reason}")]
    Invalid { op: String, reason: String },
}

fn fmt_detail(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl KernelError {
    /// The errno behind the error, when there is one: the kernel's refusal or
    /// the OS error of a /proc/sys access.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Refused { errno, .. } => Some(*errno),
            Self::Io { source, .. } => source.raw_os_error(),
            Self::Netlink { .. } | Self::Unavailable { .. } | Self::Invalid { .. } => None,
        }
    }

    /// What was being done, e.g. "set MTU 9000 on virbr-nat (index 7)".
    #[cfg(test)]
    pub fn op(&self) -> &str {
        match self {
            Self::Refused { op, .. }
            | Self::Netlink { op, .. }
            | Self::Io { op, .. }
            | Self::Unavailable { op, .. }
            | Self::Invalid { op, .. } => op,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, err: rtnetlink::Error) -> Self {
        let op = op.into();
        match err {
            rtnetlink::Error::NetlinkError(msg) if msg.code.is_some() => Self::Refused {
                op,
                errno: msg.raw_code().abs(),
                detail: extack_message(&msg),
            },
            source => Self::Netlink { op, source },
        }
    }
}

/// Extracts `NLMSGERR_ATTR_MSG` from a NACK.
///
/// netlink-packet-core keeps everything after the errno as `header`. The
/// socket is opened with `NETLINK_CAP_ACK` (the kernel echoes only the 16-byte
/// header of our request, not its payload) and `NETLINK_EXT_ACK` (the kernel
/// appends NLMSGERR_ATTR_* attributes), so the attributes start at byte 16.
fn extack_message(msg: &ErrorMessage) -> Option<String> {
    const NLMSGHDR_LEN: usize = 16;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut rest = msg.header.get(NLMSGHDR_LEN..)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &rest[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;
