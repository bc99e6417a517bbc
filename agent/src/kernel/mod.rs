//! The kernel layer: the I/O edge of kvmnet towards rtnetlink and /proc/sys.
//!
//! It observes ([`Netlink::snapshot`]) and changes (the write methods of
//! [`Netlink`], [`sysctl::Sysctls`]) the network namespace it was opened in,
//! in plain comparable data types, and knows nothing of the desired-state
//! model. Every write is counted, so "a pass over an in-sync host makes no
//! write" is checkable: `netlink.writes() + sysctls.writes() == 0`.

mod error;
pub mod events;
pub mod probe;
mod snapshot;
pub mod sysctl;
mod write;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use rtnetlink::sys::AsyncSocket;
use rtnetlink::Handle;

pub use error::{KernelError, Result};
/// Only the simulated kernel of the planner's tests builds entries.
#[cfg(test)]
pub use snapshot::FdbEntry;
pub use snapshot::{Address, BridgeAttrs, Link, Route, Snapshot, VxlanAttrs};
pub use write::{BridgeSettings, LinkRef, RouteSpec, VxlanSettings};

/// kvmnet's routing protocol number: `rtm_protocol` of the routes it installs
/// and `IFA_PROTO` of the addresses it adds, which is how it recognises its
/// own objects after a restart, with no state of its own.
///
/// 72 is unused by the kernel and iproute2. To have `ip route` show
/// `proto kvmnet` instead of `proto 72`, install
/// `/etc/iproute2/rt_protos.d/kvmnet.conf` containing `72 kvmnet` (and
/// `rt_addrprotos.d/kvmnet.conf` likewise for `ip address`).
pub const RTPROT_KVMNET: u8 = 72;

/// Id of the main routing table, where [`Netlink::add_route`] installs routes
/// ([`Route::table`] of observed routes).
pub const RT_TABLE_MAIN: u32 = 254;

/// rtnetlink access to one network namespace.
#[derive(Debug)]
pub struct Netlink {
    sockets: Sockets,
    /// Serialises snapshots: see [`Netlink::snapshot`].
    dump_lock: tokio::sync::Mutex<()>,
    writes: AtomicU64,
}

/// One netlink socket per concurrent dump, since a socket runs one dump at a
/// time. Writes go through `links`.
#[derive(Debug)]
struct Sockets {
    links: Handle,
    addresses: Handle,
    routes_v4: Handle,
    routes_v6: Handle,
    neighbours: Handle,
}

impl Netlink {
    /// Opens the rtnetlink sockets and spawns their connection tasks on the
    /// current tokio runtime (panics outside one, like `tokio::spawn`).
    ///
    /// A netlink socket belongs to the network namespace of the thread that
    /// creates it, for its whole life, whichever thread later polls it.
    pub fn connect() -> Result<Netlink> {
        Ok(Netlink {
            sockets: Sockets {
                links: open_socket()?,
                addresses: open_socket()?,
                routes_v4: open_socket()?,
                routes_v6: open_socket()?,
                neighbours: open_socket()?,
            },
            dump_lock: tokio::sync::Mutex::new(()),
            writes: AtomicU64::new(0),
        })
    }

    /// Number of write requests sent to the kernel so far (attempts: a
    /// refused request counts too).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

fn open_socket() -> Result<Handle> {
    let io_err = |source| KernelError::Io {
        op: "open rtnetlink socket".into(),
        source,
    };
    let (mut connection, handle, _unsolicited) = rtnetlink::new_connection().map_err(io_err)?;
    let socket = connection.socket_mut().socket_ref();
    // CAP_ACK: a NACK echoes only the header of our request, not its
    // payload; EXT_ACK: it carries the kernel's explanation. Both together
    // let error::extack_message find that text at a fixed offset.
    socket.set_cap_ack(true).map_err(io_err)?;
    socket.set_ext_ack(true).map_err(io_err)?;
    tokio::spawn(connection);
    Ok(handle)
}
