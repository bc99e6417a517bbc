//! `kvmnet-agent leases`: the leases of each network joined with its static
//! reservations, printed like `virsh net-dhcp-leases`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::config::desired::DesiredNetwork;

use super::leases::Lease;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRow {
    pub network: String,
    /// RFC 3339 (UTC), or "never" for an infinite lease.
    pub expiry: String,
    pub mac: Option<String>,
    /// "ipv4" or "ipv6".
    pub protocol: &'static str,
    /// The address with its subnet's prefix length.
    pub ip: String,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
    /// The address is a static reservation of the network (`dhcp.hosts`).
    #[serde(rename = "static")]
    pub reserved: bool,
}

/// The rows of `net`'s `leases`.
pub fn rows(net: &DesiredNetwork, leases: &[Lease]) -> Vec<LeaseRow> {
    leases
        .iter()
        .map(|lease| {
            let prefix = net
                .spec
                .ip
                .iter()
                .find(|ip| ip.address.0.contains(&lease.ip))
                .map(|ip| ip.address.0.prefix_len());
            let reserved = net
                .spec
                .ip
                .iter()
                .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.hosts))
                .any(|h| h.ip == lease.ip);
            LeaseRow {
                network: net.name.clone(),
                expiry: lease.expiry.map_or_else(
                    || "never".to_string(),
                    |secs| {
                        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                            .to_string()
                    },
                ),
                mac: lease.mac.clone(),
                protocol: match lease.ip {
                    IpAddr::V4(_) => "ipv4",
                    IpAddr::V6(_) => "ipv6",
                },
                ip: match prefix {
                    Some(p) => format!("{}/{p}", lease.ip),
                    None => lease.ip.to_string(),
                },
                hostname: lease.hostname.clone(),
                client_id: lease.client_id.clone(),
                reserved,
            }
        })
        .collect()
}

/// A table with virsh's columns, plus the network and whether the address
/// is a static reservation.
pub fn to_text(rows: &[LeaseRow]) -> String {
    let header = [
        "Network",
        "Expiry Time",
        "MAC address",
        "Protocol",
        "IP address",
        "Hostname",
        "Client ID or DUID",
        "Static",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            [
                r.network.clone(),
                r.expiry.clone(),
                dash(&r.mac),
                r.protocol.to_string(),
                r.ip.clone(),
                dash(&r.hostname),
                dash(&r.client_id),
                if r.reserved { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        let text: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, " {}", text.join("   ").trim_end());
    };
    line(&mut out, &header);
    let total: usize = widths.iter().sum::<usize>() + 3 * (widths.len() - 1) + 2;
    let _ = writeln!(out, "{}", "-".repeat(total));
    for row in &cells {
        line(&mut out, &row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::NetworksFile;
    use crate::dnsmasq::leases::parse;

    #[test]
    fn marks_static_reservations_and_adds_prefixes() {
        let file: NetworksFile = toml::from_str(
            r#"
[networks.n]
mode = "nat"
[[networks.n.ip]]
address = "192.168.10.1/24"
dhcp.ranges = [{ start = "192.168.10.100", end = "192.168.10.199" }]
dhcp.hosts = [{ mac = "52:54:00:00:00:10", ip = "192.168.10.10", name = "fixed" }]
"#,
        )
        .unwrap();
        let net = DesiredNetwork::new(
            "n",
            std::path::Path::new("n.toml"),
            file.networks["n"].clone(),
        );
        let leases = parse(
            "0 52:54:00:00:00:10 192.168.10.10 fixed *\n\
             1764331200 52:54:00:00:00:20 192.168.10.150 * 01:52:54:00:00:00:20\n",
        );
        let rows = rows(&net, &leases);
        assert_eq!(rows[0].ip, "192.168.10.10/24");
        assert!(rows[0].reserved);
        assert_eq!(rows[0].expiry, "never");
        assert!(!rows[1].reserved);
        assert_eq!(rows[1].expiry, "2025-11-28T12:00:00Z");
        let text = to_text(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(" Network   Expiry Time"), "{text}");
        assert!(
            lines[2].contains("192.168.10.10/24") && lines[2].ends_with("yes"),
            "{text}"
        );
        assert!(
            lines[3].contains("01:52:54:00:00:00:20") && lines[3].ends_with("no"),
            "{text}"
        );
    }
}
