//! Network managers that would fight kvmnet over a bridged network's uplink:
//! NetworkManager and systemd-networkd put addresses (and DHCP clients) back
//! on a device they manage. kvmnet does not change their configuration; it
//! warns, saying what to configure there.

use std::fs;
use std::path::Path;

use crate::config::desired::DesiredState;
use crate::config::model::Mode;
use crate::kernel::Snapshot;

/// Warnings for the uplinks of bridged networks that a network manager
/// manages. The managers run in the initial network namespace and manage
/// only its devices: in any other namespace (containers, tests) no device of
/// ours is theirs, and their state files describe other devices.
pub fn uplink_warnings(desired: &DesiredState, snapshot: &Snapshot) -> Vec<String> {
    if !in_initial_netns() {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for net in desired.networks.values() {
        let (Mode::Bridge, Some(uplink)) = (net.spec.mode, &net.spec.uplink) else {
            continue;
        };
        // An unmanaged bridge is the network manager's, uplink included.
        if !net.spec.bridge.managed {
            continue;
        }
        let Some(link) = snapshot.link_by_name(uplink) else {
            continue;
        };
        let read = |dir: &str| fs::read_to_string(Path::new(dir).join(link.index.to_string())).ok();
        warnings.extend(warning(
            &net.name,
            uplink,
            &net.bridge,
            read("/run/NetworkManager/devices").as_deref(),
            read("/run/systemd/netif/links").as_deref(),
        ));
    }
    warnings
}

fn in_initial_netns() -> bool {
    match (
        fs::read_link("/proc/self/ns/net"),
        fs::read_link("/proc/1/ns/net"),
    ) {
        (Ok(own), Ok(init)) => own == init,
        // /proc/1 unreadable (no privileges): assume the common case.
        _ => true,
    }
}

/// The warning for one uplink, from NetworkManager's device state file
/// (`/run/NetworkManager/devices/<ifindex>`, `managed=true`) and networkd's
/// link state file (`/run/systemd/netif/links/<ifindex>`, `ADMIN_STATE`).
fn warning(
    network: &str,
    uplink: &str,
    bridge: &str,
    nm_device: Option<&str>,
    networkd_link: Option<&str>,
) -> Option<String> {
    let nm_managed = nm_device.is_some_and(|t| t.lines().any(|l| l.trim() == "managed=true"));
    if nm_managed {
        return Some(format!(
            "network {network}: uplink {uplink} is managed by NetworkManager, which will put its addresses back and fight kvmnet; make NetworkManager leave it and {bridge} alone: `nmcli device set {uplink} managed no`, and permanently `[keyfile] unmanaged-devices=interface-name:{uplink};interface-name:{bridge}` in /etc/NetworkManager/conf.d/kvmnet.conf"
        ));
    }
    let state = networkd_link?
        .lines()
        .find_map(|l| l.strip_prefix("ADMIN_STATE="))?
        .trim();
    if matches!(
        state,
        "configured" | "configuring" | "pending" | "initialized"
    ) {
        return Some(format!(
            "network {network}: uplink {uplink} is managed by systemd-networkd (ADMIN_STATE={state}), which will put its addresses back and fight kvmnet; have its .network file for {uplink} (and any for {bridge}) say `[Link] Unmanaged=yes`, then `networkctl reload`"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::warning;

    #[test]
    fn network_manager_managed_device() {
        let w = warning("lan", "eno1", "br0", Some("[device]\nmanaged=true\n"), None).unwrap();
        assert!(w.contains("managed by NetworkManager"), "{w}");
        assert!(
            w.contains("unmanaged-devices=interface-name:eno1;interface-name:br0"),
            "{w}"
        );
        assert_eq!(
            warning(
                "lan",
                "eno1",
                "br0",
                Some("[device]\nmanaged=false\n"),
                None
            ),
            None
        );
    }

    #[test]
    fn networkd_configured_link() {
        let w = warning(
            "lan",
            "eno1",
            "br0",
            None,
            Some("ADMIN_STATE=configured\nOPER_STATE=routable\n"),
        )
        .unwrap();
        assert!(
            w.contains("systemd-networkd (ADMIN_STATE=configured)"),
            "{w}"
        );
        assert!(w.contains("Unmanaged=yes"), "{w}");
        assert_eq!(
            warning("lan", "eno1", "br0", None, Some("ADMIN_STATE=unmanaged\n")),
            None
        );
        assert_eq!(warning("lan", "eno1", "br0", None, None), None);
    }
}
