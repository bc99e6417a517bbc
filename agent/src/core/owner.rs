//! Ownership without stored state: a link is kvmnet's when it is of a kind
//! kvmnet creates (a bridge, an overlay's VXLAN device) with the alias
//! `kvmnet:<network>`, a rule when its comment is.

use crate::kernel::Link;

/// The alias prefix that marks a link as kvmnet's: `kvmnet:<network>`.
pub const ALIAS_PREFIX: &str = "kvmnet:";

pub fn owner_alias(network: &str) -> String {
    format!("{ALIAS_PREFIX}{network}")
}

/// The kinds of link kvmnet creates: networks' bridges and overlays'
/// VXLAN devices.
const OWNED_KINDS: [&str; 2] = ["bridge", "vxlan"];

/// The network a link belongs to, if kvmnet owns it: a link of a kind
/// kvmnet creates (a bridge, a VXLAN device) with the alias
/// `kvmnet:<network>`. Another kind carrying that alias (copied onto a NIC
/// or a veth by someone) is not ours: never deleted, never reported as ours.
pub fn link_owner(link: &Link) -> Option<&str> {
    if !link
        .kind
        .as_deref()
        .is_some_and(|k| OWNED_KINDS.contains(&k))
    {
        return None;
    }
    link.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)
}
