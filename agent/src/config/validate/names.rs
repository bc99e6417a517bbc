//! Names that reach the kernel, dnsmasq and nft: network and interface names.

use super::*;

/// Whether `name` is a network name `check_network_name` accepts: it is
/// written into link aliases, file names, firewall comments and dnsmasq's
/// configuration.
pub fn is_safe_network_name(name: &str) -> bool {
    check_network_name(name).is_ok()
}

pub(super) fn check_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NETWORK_NAME {
        return Err(format!(
            "it is {} bytes long, at most {MAX_NETWORK_NAME} are allowed",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("it must start with a letter or digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("it contains {c:?}"));
    }
    Ok(())
}

/// An interface name every consumer takes literally: the kernel
/// (dev_valid_name: at most 15 bytes, not "." or ".."; a '%' would make it a
/// template such as `kv%d`), dnsmasq (`interface=` splits at ',', takes '*'
/// as a wildcard and '"' as a quote) and nft (`iifname "kv*"` is a
/// wildcard). So: letters, digits, '-', '_' and '.' only. Validation,
/// the JSON Schema (`model::IFNAME_PATTERN`) and the renderers of dnsmasq's
/// configuration and of the firewall (a last guard: they refuse, never
/// quote) all apply this one rule.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("it contains {c:?}"));
    }
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "it is {} bytes long, interface names have at most {MAX_IFNAME}",
            name.len()
        ));
    }
    // The last two would collide with /proc/sys/net/ipv6/conf/{all,default}.
    if matches!(name, "." | ".." | "lo" | "all" | "default") {
        return Err(format!("{name:?} is reserved"));
    }
    Ok(())
}

/// Whether `name` is an interface name that is safe everywhere it is
/// written: see `check_ifname`.
pub fn is_safe_ifname(name: &str) -> bool {
    check_ifname(name).is_ok()
}

/// The help of every interface name error.
pub(super) const IFNAME_HELP: &str =
    "letters, digits, '-', '_' and '.', at most 15 bytes, like \"virbr-nat\"";
