//! An underlay between host namespaces: one namespace holding a bridge that
//! every host plugs into, as servers into a switch.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::link::veth;
use crate::netns::Netns;

/// The switch's bridge inside the underlay namespace.
const SWITCH: &str = "sw";

/// A namespace with a bridge, deleted on drop like any [`Netns`].
#[derive(Debug)]
pub struct Underlay {
    ns: Netns,
    ports: AtomicU32,
}

impl Underlay {
    #[allow(clippy::new_without_default)]
    #[track_caller]
    pub fn new() -> Underlay {
        let ns = Netns::new("underlay");
        ns.ip_ok(&["link", "add", SWITCH, "type", "bridge", "stp_state", "0"]);
        ns.set_up(SWITCH);
        Underlay {
            ns,
            ports: AtomicU32::new(0),
        }
    }

    /// Plugs `host` in through its interface `ifname`, which gets `cidr`.
    #[track_caller]
    pub fn join(&self, host: &Netns, ifname: &str, cidr: &str) {
        let port = format!("p{}", self.ports.fetch_add(1, Ordering::Relaxed));
        veth(host, ifname, &self.ns, &port);
        self.ns.ip_ok(&["link", "set", &port, "master", SWITCH]);
        host.add_addr(ifname, cidr);
    }
}
