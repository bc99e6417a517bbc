//! Ownership without stored state: a link is kvmnet's when its alias is
//! `kvmnet:<network>`, a rule when its comment is.

use crate::kernel::Link;

/// The alias prefix that marks a link as kvmnet's: `kvmnet:<network>`.
pub const ALIAS_PREFIX: &str = "kvmnet:";

pub fn owner_alias(network: &str) -> String {
    format!("{ALIAS_PREFIX}{network}")
}

/// The network a link belongs to, if kvmnet owns it.
pub fn link_owner(link: &Link) -> Option<&str> {
    link.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)
}
