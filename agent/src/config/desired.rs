//! The desired state of the host: every valid network with its defaults
//! resolved, and the files that were rejected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::diagnostic::Diagnostic;
use crate::config::model::{MacAddr, Network};

/// A validated network with its defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredNetwork {
    pub name: String,
    /// The file that defines it.
    pub file: PathBuf,
    /// The bridge's interface name (given, or derived from the network name).
    pub bridge: String,
    /// The bridge's MAC (given, or derived from the network name).
    pub mac: MacAddr,
    pub spec: Network,
    /// Its file is currently rejected; this is the last good version of it.
    pub last_good: bool,
}

impl DesiredNetwork {
    pub fn new(name: &str, file: &Path, spec: Network) -> DesiredNetwork {
        DesiredNetwork {
            name: name.to_string(),
            file: file.to_path_buf(),
            bridge: spec
                .bridge
                .name
                .clone()
                .unwrap_or_else(|| default_bridge_name(name)),
            mac: spec.bridge.mac.unwrap_or_else(|| default_mac(name)),
            spec,
            last_good: false,
        }
    }
}

/// A file whose networks are not applied, with the reasons.
#[derive(Debug, Clone)]
pub struct RejectedFile {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// The networks it names, when it parsed at all.
    pub networks: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    pub networks: BTreeMap<String, DesiredNetwork>,
    pub rejected: Vec<RejectedFile>,
    /// Every network the files define is known (no file rejected, or each
    /// rejected file runs from its last good copy): removing what kvmnet owns
    /// for other networks is safe.
    pub complete: bool,
}

impl DesiredState {
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.rejected.iter().flat_map(|r| &r.diagnostics)
    }
}

/// The default bridge name: `kv-<name>`, or when that exceeds the 15 bytes
/// of an interface name, a prefix of the name and a hash that keeps it unique.
pub fn default_bridge_name(network: &str) -> String {
    let full = format!("kv-{network}");
    if full.len() <= 15 {
        return full;
    }
    let prefix: String = network.chars().take(6).collect();
    format!("kv-{prefix}-{:05x}", fnv1a(network) & 0xfffff)
}

/// The default bridge MAC: in QEMU/libvirt's 52:54:00 range, from a hash of
/// the network name, so that it is stable across restarts without state.
pub fn default_mac(network: &str) -> MacAddr {
    let h = fnv1a(network).to_be_bytes();
    MacAddr([0x52, 0x54, 0x00, h[5], h[6], h[7]])
}

/// FNV-1a, 64 bit: a stable hash (std's hasher may change between releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bridge_names_fit_and_differ() {
        assert_eq!(default_bridge_name("default"), "kv-default");
        let a = default_bridge_name("a-very-long-network-name");
        let b = default_bridge_name("a-very-long-network-name-2");
        assert!(a.len() <= 15 && b.len() <= 15);
        assert_ne!(a, b);
        assert!(a.starts_with("kv-a-very"));
    }

    #[test]
    fn default_mac_is_stable_and_unicast() {
        let mac = default_mac("default");
        assert_eq!(mac, default_mac("default"));
        assert_ne!(mac, default_mac("other"));
        assert!(!mac.is_multicast());
        assert_eq!(&mac.0[..3], &[0x52, 0x54, 0x00]);
    }
}
