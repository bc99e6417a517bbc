//! The sysctls kvmnet enforces, read and written through /proc/sys.
//!
//! Synchronous on purpose: /proc/sys/net resolves to the network namespace of
//! the calling *thread*, and tokio::fs would run the access on a blocking-pool
//! thread, possibly in another namespace (in tests, which move one thread into
//! a fresh namespace, it would be the host's). These are tiny reads and writes
//! of in-kernel values that never block on I/O, fine on an async worker.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{KernelError, Result};

const PROC_SYS: &str = "/proc/sys";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sysctl {
    /// `net.ipv4.ip_forward`
    IpForward,
    /// `net.ipv6.conf.all.forwarding`
    Ipv6Forwarding,
    /// `net.ipv6.conf.<dev>.disable_ipv6`
    DisableIpv6(String),
    /// `net.ipv6.conf.<dev>.accept_ra` (0, 1 or 2)
    AcceptRa(String),
}

impl Sysctl {
    /// Path under /proc/sys. Device names are path components as they are:
    /// a dot in `eth0.100` stays a dot (sysctl(8) keys would need a slash).
    fn relative_path(&self) -> PathBuf {
        match self {
            Self::IpForward => "net/ipv4/ip_forward".into(),
            Self::Ipv6Forwarding => "net/ipv6/conf/all/forwarding".into(),
            Self::DisableIpv6(dev) => Path::new("net/ipv6/conf").join(dev).join("disable_ipv6"),
            Self::AcceptRa(dev) => Path::new("net/ipv6/conf").join(dev).join("accept_ra"),
        }
    }

    fn device(&self) -> Option<&str> {
        match self {
            Self::IpForward | Self::Ipv6Forwarding => None,
            Self::DisableIpv6(dev) | Self::AcceptRa(dev) => Some(dev),
        }
    }
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IpForward => f.write_str("net.ipv4.ip_forward"),
            Self::Ipv6Forwarding => f.write_str("net.ipv6.conf.all.forwarding"),
            Self::DisableIpv6(dev) => write!(f, "net.ipv6.conf.{dev}.disable_ipv6"),
            Self::AcceptRa(dev) => write!(f, "net.ipv6.conf.{dev}.accept_ra"),
        }
    }
}

/// Access to the sysctls of the calling thread's network namespace, counting
/// writes like [`super::Netlink::writes`] (add both for a pass's total).
#[derive(Debug, Default)]
pub struct Sysctls {
    writes: AtomicU64,
}

impl Sysctls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Current value, or `None` when the sysctl does not exist: IPv6 disabled
    /// on the host, or no such device.
    pub fn read(&self, key: &Sysctl) -> Result<Option<u32>> {
        let op = || format!("read {key}");
        let path = checked_path(key, op)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KernelError::Io { op: op(), source }),
        };
        text.trim().parse().map(Some).map_err(|_| KernelError::Io {
            op: op(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a number: {:?}", path.display(), text.trim()),
            ),
        })
    }

    /// Writes `value`; a sysctl that does not exist is
    /// [`KernelError::Unavailable`].
    pub fn write(&self, key: &Sysctl, value: u32) -> Result<()> {
        let op = || format!("set {key} = {value}");
        let path = checked_path(key, op)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        match std::fs::write(&path, format!("{value}\n")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(KernelError::Unavailable {
                op: op(),
                reason: unavailable_reason(key),
            }),
            Err(source) => Err(KernelError::Io { op: op(), source }),
        }
    }

    /// Number of writes attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Refuses device names that are not one path component, so that a name
/// cannot point the write at another sysctl ("../../ipv4/ip_forward").
fn checked_path(key: &Sysctl, op: impl Fn() -> String) -> Result<PathBuf> {
    if let Some(dev) = key.device() {
        if dev.is_empty() || dev == "." || dev == ".." || dev.contains(['/', '\0']) {
            return Err(KernelError::Invalid {
                op: op(),
                reason: format!("invalid device name {dev:?}"),
            });
        }
    }
    Ok(Path::new(PROC_SYS).join(key.relative_path()))
}

fn unavailable_reason(key: &Sysctl) -> String {
    let ipv6 = matches!(
        key,
        Sysctl::Ipv6Forwarding | Sysctl::DisableIpv6(_) | Sysctl::AcceptRa(_)
    );
    if ipv6 && !Path::new(PROC_SYS).join("net/ipv6").exists() {
        "IPv6 is disabled on this host".into()
    } else if let Some(dev) = key.device() {
        format!("no device {dev}")
    } else {
        "no such sysctl".into()
    }
}
