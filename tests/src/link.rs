//! Wiring namespaces together with veth pairs.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns::{check_ifname, Netns};

/// Connects `a` and `b` with a veth pair, `a_if` in `a` and `b_if` in `b`,
/// both up.
#[track_caller]
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    check_ifname(a_if);
    check_ifname(b_if);
    // Created inside `a` with the peer born in `b`: the pair never exists in
    // the machine's own namespace, not even for a moment.
    a.ip_ok(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.set_up(a_if);
    b.set_up(b_if);
}

/// Plugs `vm` into `bridge` (which must exist in `host`) the way a guest's tap
/// is: `vm_if` in `vm`, its peer in `host` enslaved to `bridge`, both up.
/// Returns the name of the host-side port.
#[track_caller]
pub fn attach_to_bridge(host: &Netns, bridge: &str, vm: &Netns, vm_if: &str) -> String {
    static PORTS: AtomicU32 = AtomicU32::new(0);
    // Unique within this process, and only this process uses `host`. Named
    // like libvirt's taps.
    let port = format!("vnet{}", PORTS.fetch_add(1, Ordering::Relaxed));
    veth(host, &port, vm, vm_if);
    host.ip_ok(&["link", "set", &port, "master", bridge]);
    port
}
