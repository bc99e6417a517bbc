//! dnsmasq's lease file, parsed. dnsmasq rewrites it in place, so a reader
//! may see it half written: bad lines are skipped, never a panic.
//!
//! IPv4: `EXPIRY MAC IP HOSTNAME CLIENT-ID`; a `duid SERVER-DUID` line, then
//! IPv6: `EXPIRY IAID IP HOSTNAME DUID`. `*` is "none"; expiry 0 is infinite.

use std::net::IpAddr;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// Seconds since the epoch; `None` for an infinite lease.
    pub expiry: Option<u64>,
    /// IPv4 leases only.
    pub mac: Option<String>,
    pub ip: IpAddr,
    pub hostname: Option<String>,
    /// The client identifier (IPv4) or DUID (IPv6).
    pub client_id: Option<String>,
    /// The identity association (IPv6 leases only).
    pub iaid: Option<u32>,
}

/// Every well-formed lease line of `text`.
pub fn parse(text: &str) -> Vec<Lease> {
    text.lines().filter_map(parse_line).collect()
}

/// The server's DUID (the `duid` line before the IPv6 leases), which a
/// DHCPv6 release must name.
pub fn server_duid(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        (fields.next() == Some("duid"))
            .then(|| fields.next().map(str::to_string))
            .flatten()
    })
}

fn parse_line(line: &str) -> Option<Lease> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if fields.len() < 4 || fields[0] == "duid" {
        return None;
    }
    let expiry: u64 = fields[0].parse().ok()?;
    let ip: IpAddr = fields[2].parse().ok()?;
    let (mac, iaid) = match ip {
        IpAddr::V4(_) => (Some(mac(fields[1])?), None),
        IpAddr::V6(_) => (None, Some(fields[1].parse().ok()?)),
    };
    let optional = |f: Option<&&str>| f.filter(|s| **s != "*").map(|s| s.to_string());
    Some(Lease {
        expiry: (expiry != 0).then_some(expiry),
        mac,
        ip,
        hostname: optional(fields.get(3)),
        client_id: optional(fields.get(4)),
        iaid,
    })
}

/// A MAC as dnsmasq writes it: hex octets separated by colons (six for
/// Ethernet; other hardware types have other lengths).
fn mac(text: &str) -> Option<String> {
    let ok = text
        .split(':')
        .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE: &str = "\
1764331200 52:54:00:f4:6a:43 192.168.10.10 myhost 01:52:54:00:f4:6a:43
0 52:54:00:aa:bb:cc 192.168.10.57 * *
duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01
1764331300 1234 fd00:50::1a4 web 00:04:aa:bb
";

    #[test]
    fn parses_ipv4_and_ipv6_lines() {
        let leases = parse(FILE);
        assert_eq!(leases.len(), 3);
        assert_eq!(
            leases[0],
            Lease {
                expiry: Some(1_764_331_200),
                mac: Some("52:54:00:f4:6a:43".into()),
                ip: "192.168.10.10".parse().unwrap(),
                hostname: Some("myhost".into()),
                client_id: Some("01:52:54:00:f4:6a:43".into()),
                iaid: None,
            }
        );
        assert_eq!(leases[1].expiry, None, "0 is an infinite lease");
        assert_eq!(leases[1].hostname, None);
        assert_eq!(leases[1].client_id, None);
        assert_eq!(leases[2].mac, None);
        assert_eq!(leases[2].iaid, Some(1234));
        assert_eq!(leases[2].client_id.as_deref(), Some("00:04:aa:bb"));
    }

    #[test]
    fn the_server_duid_is_read_from_its_line() {
        assert_eq!(
            server_duid(FILE).as_deref(),
            Some("00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01")
        );
        assert_eq!(server_duid("duid\n1 2 3"), None);
    }

    #[test]
    fn skips_half_written_and_garbage_lines() {
        let text = "garbage\n1764331200 52:54:00:f4:6a:43 192.168.10\n\
                    x 52:54:00:f4:6a:43 192.168.10.10 a b\n\
                    1764331200 zz:54:00:f4:6a:43 192.168.10.10 a b\n\
                    1764331200 52:54:00:f4:6a:43 192.168.10.11 a b\n1764331200 52:54";
        let leases = parse(text);
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].ip.to_string(), "192.168.10.11");
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_truncated_files(cut in 0..FILE.len()) {
            let leases = parse(&FILE[..cut]);
            prop_assert!(leases.len() <= 3);
        }
    }
}
