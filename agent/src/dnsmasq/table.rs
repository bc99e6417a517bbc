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
    /// A client holds a lease on it (false: a reservation no client has
    /// taken yet).
    pub leased: bool,
}

/// The rows of `net`'s `leases`: its leases, then the static reservations
/// no lease holds yet.
pub fn rows(net: &DesiredNetwork, leases: &[Lease]) -> Vec<LeaseRow> {
    let prefix_of = |addr: IpAddr| {
        net.spec
            .ip
            .iter()
            .find(|ip| ip.address.0.contains(&addr))
            .map_or_else(
                || addr.to_string(),
                |ip| format!("{addr}/{}", ip.address.0.prefix_len()),
            )
    };
    let unleased = net
        .spec
        .ip
        .iter()
        .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.hosts))
        .filter(|h| !leases.iter().any(|l| l.ip == h.ip))
        .map(|h| LeaseRow {
            network: net.name.clone(),
            expiry: "no lease".to_string(),
            mac: h.mac.map(|m| m.to_string()),
            protocol: protocol(h.ip),
            ip: prefix_of(h.ip),
            hostname: h.name.clone(),
            client_id: None,
            reserved: true,
            leased: false,
        });
    let leased = leases.iter().map(|lease| {
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
            protocol: protocol(lease.ip),
            ip: prefix_of(lease.ip),
            hostname: lease.hostname.clone(),
            client_id: lease.client_id.clone(),
            reserved,
            leased: true,
        }
    });
    leased.chain(unleased).collect()
}

fn protocol(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(_) => "ipv6",
    }
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
dhcp.hosts = [
  { mac = "52:54:00:00:00:10", ip = "192.168.10.10", name = "fixed" },
  { mac = "52:54:00:00:00:11", ip = "192.168.10.11", name = "later" },
]
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
        assert_eq!(rows.len(), 3, "the reservation without a lease is listed");
        assert_eq!(rows[2].ip, "192.168.10.11/24");
        assert_eq!(rows[2].hostname.as_deref(), Some("later"));
        assert_eq!(rows[2].expiry, "no lease");
        assert!(rows[2].reserved && !rows[2].leased && rows[0].leased);
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
        assert!(
            lines[4].contains("no lease") && lines[4].ends_with("yes"),
            "{text}"
        );
    }
}
