//! DNS of a network, and the raw dnsmasq options it may carry.

use super::*;

/// Options kvmnet writes itself, or that would change how the agent runs
/// dnsmasq: `dnsmasq.options` may not set them.
pub(super) const OWNED_DNSMASQ_OPTIONS: &[&str] = &[
    "addn-hosts",
    "bind-dynamic",
    "bind-interfaces",
    "conf-dir",
    "conf-file",
    "dhcp-authoritative",
    "dhcp-boot",
    "dhcp-host",
    "dhcp-hostsfile",
    "dhcp-lease-max",
    "dhcp-leasefile",
    "dhcp-no-override",
    "dhcp-range",
    "domain",
    "domain-needed",
    "enable-ra",
    "enable-tftp",
    "except-interface",
    "expand-hosts",
    "group",
    "interface",
    "keep-in-foreground",
    "listen-address",
    "local",
    "log-facility",
    "no-daemon",
    "no-resolv",
    "pid-file",
    "port",
    "ra-param",
    "resolv-file",
    "server",
    "servers-file",
    "srv-host",
    "strict-order",
    "tftp-root",
    "txt-record",
    "user",
];

pub(super) fn check_dnsmasq_options(r: &mut Reporter, at: &KeyPath, options: &[String]) {
    for (i, option) in options.iter().enumerate() {
        let name = option.split('=').next().unwrap_or_default().trim();
        let name = name.strip_prefix("--").unwrap_or(name);
        if option.chars().any(char::is_control) {
            r.error(
                &at.index(i),
                Target::Value,
                "a dnsmasq option is one line without control characters",
            );
        } else if name.is_empty() || name.starts_with('#') {
            r.error(&at.index(i), Target::Value, "an option needs a name");
        } else if OWNED_DNSMASQ_OPTIONS.contains(&name) {
            r.error(
                &at.index(i),
                Target::Value,
                format!("{name} is set by kvmnet from the network's keys"),
            )
            .hint("use the network's own keys (docs/configuration.md)");
        }
    }
}

/// Whether `name` is a DNS name `check_hostname` accepts: nothing in it can
/// end a dnsmasq directive or hosts line (no ',', '/', '#', space or newline).
pub fn is_safe_dns_name(name: &str) -> bool {
    check_hostname(name).is_ok()
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens.
pub(super) fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name has 1 to 253 characters".into());
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label has 1 to 63 characters".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("it contains {c:?}"));
        }
    }
    Ok(())
}
pub(super) fn check_dns(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let Some(dns) = &net.dns else { return };
    let at = at.key("dns");
    let records = !dns.hosts.is_empty() || !dns.srv.is_empty() || !dns.txt.is_empty();
    if !dns.enable && (dns.domain.is_some() || !dns.forwarders.is_empty() || records) {
        r.error(
            &at.key("enable"),
            Target::Value,
            "DNS is disabled, so domain, forwarders, hosts, srv and txt would have no effect",
        )
        .hint("remove them, or set enable = true");
    }
    if let Some(domain) = &dns.domain {
        if let Err(why) = check_hostname(domain) {
            r.error(
                &at.key("domain"),
                Target::Value,
                format!("invalid domain {domain:?}: {why}"),
            );
        }
    }
    for (i, fwd) in dns.forwarders.iter().enumerate() {
        if let Some(addr) = fwd.addr.filter(|a| a.is_unspecified() || a.is_multicast()) {
            r.error(
                &at.key("forwarders").index(i),
                Target::Value,
                format!("{addr} cannot be a DNS server"),
            );
        }
        if fwd.port == Some(0) {
            r.error(
                &at.key("forwarders").index(i),
                Target::Value,
                "port 0 is not a port",
            );
        }
        if let Some(domain) = &fwd.domain {
            if let Err(why) = check_hostname(domain) {
                r.error(
                    &at.key("forwarders").index(i),
                    Target::Value,
                    format!("invalid domain {domain:?}: {why}"),
                );
            }
        }
    }
    for (i, host) in dns.hosts.iter().enumerate() {
        let hat = at.key("hosts").index(i);
        if host.ip.is_unspecified() || host.ip.is_multicast() {
            r.error(
                &hat.key("ip"),
                Target::Value,
                format!("{} cannot be a host's address", host.ip),
            );
        }
        if host.names.is_empty() {
            r.error(
                &hat.key("names"),
                Target::Value,
                "a DNS host needs at least one name",
            );
        }
        for (j, name) in host.names.iter().enumerate() {
            if let Err(why) = check_hostname(name) {
                r.error(
                    &hat.key("names").index(j),
                    Target::Value,
                    format!("invalid host name {name:?}: {why}"),
                );
            }
        }
    }
    for (i, srv) in dns.srv.iter().enumerate() {
        check_srv(r, &at.key("srv").index(i), srv);
    }
    for (i, txt) in dns.txt.iter().enumerate() {
        check_txt(r, &at.key("txt").index(i), txt);
    }
}

pub(super) fn check_srv(r: &mut Reporter, at: &KeyPath, srv: &SrvRecord) {
    let service_ok = !srv.service.is_empty()
        && srv.service.len() <= 63
        && srv
            .service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !service_ok {
        r.error(
            &at.key("service"),
            Target::Value,
            format!(
                "invalid service {:?}: 1 to 63 letters, digits and '-', without the leading '_'",
                srv.service
            ),
        );
    }
    for (key, name) in [("domain", &srv.domain), ("target", &srv.target)] {
        let Some(name) = name.as_deref().filter(|n| *n != ".") else {
            continue;
        };
        if let Err(why) = check_hostname(name) {
            r.error(
                &at.key(key),
                Target::Value,
                format!("invalid {key} {name:?}: {why}"),
            );
        }
    }
    let needs = [
        ("port", srv.port.is_some(), "target", srv.target.is_some()),
        (
            "priority",
            srv.priority.is_some(),
            "port",
            srv.port.is_some(),
        ),
        (
            "weight",
            srv.weight.is_some(),
            "priority",
            srv.priority.is_some(),
        ),
    ];
    for (key, set, needed, has) in needs {
        if set && !has {
            r.error(
                &at.key(key),
                Target::Key,
                format!("an SRV record's {key} needs its {needed}"),
            );
        }
    }
}

pub(super) fn check_txt(r: &mut Reporter, at: &KeyPath, txt: &TxtRecord) {
    if let Err(why) = check_hostname(&txt.name) {
        r.error(
            &at.key("name"),
            Target::Value,
            format!("invalid name {:?}: {why}", txt.name),
        );
    }
    if txt.value.contains(['"', '\\']) || txt.value.chars().any(char::is_control) {
        r.error(
            &at.key("value"),
            Target::Value,
            "a TXT value is printable text without double quotes or backslashes",
        );
    }
}
