//! Leases as observed state: a pure diff of a network's active leases
//! against its files (reservations and ranges), and its pool usage.
//!
//! A lease is stale when it holds an address the files no longer give that
//! client: its MAC (or host name) is reserved to another address, its
//! address is reserved for another client, or it is a dynamic lease outside
//! every current range. Releasing it in the running dnsmasq makes the
//! client's next DHCP exchange get the address the files say.

use std::net::IpAddr;

use serde::Serialize;

use crate::config::desired::DesiredNetwork;
use crate::config::model::{DhcpHost, DhcpRange};

use super::leases::Lease;

/// Why a lease is stale, and the address the files give its client (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLease {
    pub lease: Lease,
    /// The address reserved for this client, when there is one.
    pub wanted: Option<IpAddr>,
    pub reason: StaleReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleReason {
    /// The client is reserved another address.
    ReservedElsewhere,
    /// The address is reserved for another client (named here).
    AddressReservedFor(String),
    /// A dynamic lease outside every current range.
    OutsideRanges,
}

impl StaleLease {
    /// The client as reports name it: MAC, else DUID, else host name.
    pub fn client(&self) -> String {
        let l = &self.lease;
        l.mac
            .clone()
            .or_else(|| l.client_id.clone())
            .or_else(|| l.hostname.clone())
            .unwrap_or_else(|| l.ip.to_string())
    }

    /// `wanted`, `found` as the drift shows them.
    pub fn wanted_found(&self) -> (String, String) {
        let found = self.lease.ip.to_string();
        let wanted = match (&self.reason, self.wanted) {
            (_, Some(ip)) => ip.to_string(),
            (StaleReason::AddressReservedFor(other), None) => {
                format!("no lease on {found}, reserved for {other}")
            }
            (StaleReason::OutsideRanges, None) => "an address in a DHCP range".to_string(),
            (StaleReason::ReservedElsewhere, None) => "none".to_string(),
        };
        (wanted, found)
    }
}

/// Leases, pool size and pool use of one network: what metrics show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DhcpUsage {
    /// Active leases, static and dynamic.
    pub leases: u64,
    /// Addresses in the dynamic ranges.
    pub pool_size: u64,
    /// Active leases on addresses of the dynamic ranges.
    pub pool_used: u64,
}

/// Whether `lease` is active at `now` (seconds since the epoch): dnsmasq
/// leaves expired leases in its file until it next writes it.
fn active(lease: &Lease, now: u64) -> bool {
    lease.expiry.is_none_or(|expiry| expiry > now)
}

fn hosts(net: &DesiredNetwork) -> impl Iterator<Item = &DhcpHost> {
    net.spec
        .ip
        .iter()
        .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.hosts))
}

fn ranges(net: &DesiredNetwork) -> impl Iterator<Item = &DhcpRange> {
    net.spec
        .ip
        .iter()
        .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.ranges))
}

fn in_range(range: &DhcpRange, ip: IpAddr) -> bool {
    match (range.start, range.end, ip) {
        (IpAddr::V4(s), IpAddr::V4(e), IpAddr::V4(a)) => s <= a && a <= e,
        (IpAddr::V6(s), IpAddr::V6(e), IpAddr::V6(a)) => s <= a && a <= e,
        _ => false,
    }
}

/// Whether reservation `host` names the client of `lease`: by MAC for IPv4
/// leases, by DUID for IPv6 reservations that have one, else by host name.
fn is_client(host: &DhcpHost, lease: &Lease) -> bool {
    if host.ip.is_ipv4() != lease.ip.is_ipv4() {
        return false;
    }
    if let (Some(duid), false) = (&host.duid, host.ip.is_ipv4()) {
        return lease
            .client_id
            .as_deref()
            .is_some_and(|id| same_duid(duid, id));
    }
    match (&host.mac, &lease.mac) {
        (Some(mac), Some(leased)) => mac.to_string().eq_ignore_ascii_case(leased),
        (Some(_), None) => false,
        (None, _) => host
            .name
            .as_deref()
            .is_some_and(|n| lease.hostname.as_deref() == Some(n)),
    }
}

/// DUIDs compared octet by octet: "0:3" and "00:03" are one DUID.
fn same_duid(a: &str, b: &str) -> bool {
    let octets = |s: &str| -> Vec<Option<u8>> {
        s.split(':')
            .map(|o| u8::from_str_radix(o, 16).ok())
            .collect()
    };
    octets(a) == octets(b)
}

fn describe(host: &DhcpHost) -> String {
    if let Some(duid) = &host.duid {
        return format!("DUID {duid}");
    }
    match (&host.mac, &host.name) {
        (Some(mac), _) => mac.to_string(),
        (None, Some(name)) => name.clone(),
        (None, None) => host.ip.to_string(),
    }
}

/// The stale leases among `leases` of `net`, at `now`.
pub fn stale(net: &DesiredNetwork, leases: &[Lease], now: u64) -> Vec<StaleLease> {
    let mut out = Vec::new();
    for lease in leases.iter().filter(|l| active(l, now)) {
        let mine = hosts(net).find(|h| is_client(h, lease));
        let reserved_here = hosts(net).find(|h| h.ip == lease.ip);
        let reason = match (mine, reserved_here) {
            (Some(host), _) if host.ip != lease.ip => Some(StaleReason::ReservedElsewhere),
            (Some(_), _) => None,
            (None, Some(other)) => Some(StaleReason::AddressReservedFor(describe(other))),
            (None, None) if !ranges(net).any(|r| in_range(r, lease.ip)) => {
                Some(StaleReason::OutsideRanges)
            }
            (None, None) => None,
        };
        if let Some(reason) = reason {
            out.push(StaleLease {
                lease: lease.clone(),
                wanted: mine.map(|h| h.ip),
                reason,
            });
        }
    }
    out
}

/// Leases and pool use of `net` at `now`.
pub fn usage(net: &DesiredNetwork, leases: &[Lease], now: u64) -> DhcpUsage {
    let active: Vec<&Lease> = leases.iter().filter(|l| active(l, now)).collect();
    let pool_size = ranges(net).map(range_size).fold(0u64, u64::saturating_add);
    let pool_used = active
        .iter()
        .filter(|l| ranges(net).any(|r| in_range(r, l.ip)))
        .count() as u64;
    DhcpUsage {
        leases: active.len() as u64,
        pool_size,
        pool_used,
    }
}

/// Addresses in `range`, both ends included (an IPv6 range larger than
/// u64 counts as u64::MAX).
fn range_size(range: &DhcpRange) -> u64 {
    let (start, end) = match (range.start, range.end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (u128::from(u32::from(s)), u128::from(u32::from(e))),
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e)),
        _ => return 0,
    };
    u64::try_from(end.saturating_sub(start).saturating_add(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::desired;

    const NET: &str = r#"
[networks.n]
mode = "nat"
[[networks.n.ip]]
address = "192.168.10.1/24"
dhcp.ranges = [{ start = "192.168.10.100", end = "192.168.10.149" }]
dhcp.hosts = [
  { mac = "52:54:00:aa:bb:01", ip = "192.168.10.10" },
  { name = "db", ip = "192.168.10.11" },
]
"#;

    fn lease(mac: &str, ip: &str, hostname: Option<&str>, expiry: Option<u64>) -> Lease {
        Lease {
            expiry,
            mac: Some(mac.into()),
            ip: ip.parse().unwrap(),
            hostname: hostname.map(str::to_string),
            client_id: None,
            iaid: None,
        }
    }

    /// A DHCPv6 reservation by DUID belongs to the client with that DUID,
    /// whatever its name, and is another client's address to anyone else.
    #[test]
    fn a_duid_reservation_is_matched_by_duid() {
        let text = r#"
[networks.n]
mode = "nat"
[[networks.n.ip]]
address = "fd00:10::1/64"
dhcp.ranges = [{ start = "fd00:10::100", end = "fd00:10::1ff" }]
dhcp.hosts = [{ duid = "00:03:00:01:52:54:00:00:10:12", ip = "fd00:10::12" }]
"#;
        let net = desired(text).networks["n"].clone();
        let v6 = |duid: &str| Lease {
            expiry: None,
            mac: None,
            ip: "fd00:10::12".parse().unwrap(),
            hostname: None,
            client_id: Some(duid.into()),
            iaid: Some(1),
        };
        assert!(stale(&net, &[v6("0:3:0:1:52:54:0:0:10:12")], 0).is_empty());
        let other = stale(&net, &[v6("00:03:00:01:52:54:00:00:10:99")], 0);
        assert_eq!(other.len(), 1);
        assert_eq!(
            other[0].reason,
            StaleReason::AddressReservedFor("DUID 00:03:00:01:52:54:00:00:10:12".into())
        );
    }

    fn net() -> DesiredNetwork {
        desired(NET).networks["n"].clone()
    }

    #[test]
    fn leases_the_files_agree_with_are_not_stale() {
        let leases = [
            lease("52:54:00:aa:bb:01", "192.168.10.10", None, None),
            lease("52:54:00:00:00:07", "192.168.10.11", Some("db"), None),
            lease("52:54:00:00:00:08", "192.168.10.120", None, Some(2000)),
        ];
        assert_eq!(stale(&net(), &leases, 1000), []);
    }

    #[test]
    fn a_reserved_mac_on_another_address_is_stale_with_its_reservation() {
        let leases = [lease("52:54:00:AA:BB:01", "192.168.10.120", None, None)];
        let found = stale(&net(), &leases, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reason, StaleReason::ReservedElsewhere);
        assert_eq!(found[0].client(), "52:54:00:AA:BB:01");
        assert_eq!(
            found[0].wanted_found(),
            ("192.168.10.10".into(), "192.168.10.120".into())
        );
    }

    #[test]
    fn a_reserved_name_on_another_address_is_stale() {
        let leases = [lease(
            "52:54:00:00:00:07",
            "192.168.10.130",
            Some("db"),
            None,
        )];
        let found = stale(&net(), &leases, 0);
        assert_eq!(found[0].wanted, Some("192.168.10.11".parse().unwrap()));
    }

    #[test]
    fn an_address_reserved_for_another_client_is_stale() {
        let leases = [lease("52:54:00:00:00:09", "192.168.10.10", None, None)];
        let found = stale(&net(), &leases, 0);
        assert_eq!(
            found[0].reason,
            StaleReason::AddressReservedFor("52:54:00:aa:bb:01".into())
        );
        assert_eq!(
            found[0].wanted_found().0,
            "no lease on 192.168.10.10, reserved for 52:54:00:aa:bb:01"
        );
    }

    #[test]
    fn a_dynamic_lease_outside_every_range_is_stale_unless_expired() {
        let outside = lease("52:54:00:00:00:09", "192.168.10.200", None, Some(500));
        assert_eq!(
            stale(&net(), std::slice::from_ref(&outside), 100)[0].reason,
            StaleReason::OutsideRanges
        );
        assert_eq!(stale(&net(), &[outside], 600), [], "expired");
    }

    #[test]
    fn usage_counts_active_leases_and_the_pool() {
        let leases = [
            lease("52:54:00:aa:bb:01", "192.168.10.10", None, None),
            lease("52:54:00:00:00:08", "192.168.10.120", None, None),
            lease("52:54:00:00:00:09", "192.168.10.121", None, Some(10)),
        ];
        assert_eq!(
            usage(&net(), &leases, 100),
            DhcpUsage {
                leases: 2,
                pool_size: 50,
                pool_used: 1
            }
        );
    }
}
