//! Ownership without stored state: a link is kvmnet's when it is a bridge
//! with the alias `kvmnet:<network>`, a rule when its comment is.

use crate::kernel::Link;

/// The alias prefix that marks a link as kvmnet's: `kvmnet:<network>`.
pub const ALIAS_PREFIX: &str = "kvmnet:";

pub fn owner_alias(network: &str) -> String {
    format!("{ALIAS_PREFIX}{network}")
}

/// The network a link belongs to, if kvmnet owns it: a bridge (the only
/// kind of link kvmnet creates) with the alias `kvmnet:<network>`. Another
/// kind carrying that alias (copied onto a NIC or a veth by someone) is not
/// ours: never deleted, never reported as our bridge.
pub fn link_owner(link: &Link) -> Option<&str> {
    if link.kind.as_deref() != Some("bridge") {
        return None;
    }
    link.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)
}
