//! Releasing one lease in a running dnsmasq without a restart: dnsmasq's
//! own `dhcp_release` and `dhcp_release6` (Debian's `dnsmasq-utils`) send a
//! DHCPRELEASE on the client's behalf over the bridge, and dnsmasq drops
//! that lease and no other.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use super::leases::{self, Lease};

/// How long dnsmasq gets to drop a released lease from its lease file
/// before the release is sent again, and given up after a second time.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// Releases `lease` in the dnsmasq serving `bridge`, and confirms it:
/// dnsmasq rewrites `lease_file` without it. A dnsmasq started a moment ago
/// may not handle the first DHCPRELEASE yet: it is sent a second time.
/// `server_duid` (from the lease file) is needed for IPv6 leases.
pub async fn release(
    bridge: &str,
    lease: &Lease,
    server_duid: Option<&str>,
    lease_file: &Path,
) -> Result<(), String> {
    for _ in 0..2 {
        send(bridge, lease, server_duid).await?;
        let deadline = Instant::now() + CONFIRM_TIMEOUT;
        while Instant::now() < deadline {
            if !holds(lease_file, lease) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Err(format!(
        "dnsmasq still holds the lease on {} after two DHCPRELEASEs",
        lease.ip
    ))
}

/// Whether the lease file still holds `lease` (its address for its client).
fn holds(lease_file: &Path, lease: &Lease) -> bool {
    let text = std::fs::read_to_string(lease_file).unwrap_or_default();
    leases::parse(&text)
        .iter()
        .any(|l| l.ip == lease.ip && l.mac == lease.mac && l.client_id == lease.client_id)
}

/// Sends one DHCPRELEASE for `lease`.
async fn send(bridge: &str, lease: &Lease, server_duid: Option<&str>) -> Result<(), String> {
    let (program, args) = command(bridge, lease, server_duid)?;
    let output = tokio::process::Command::new(program)
        .args(&args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("{program} is not installed (Debian: dnsmasq-utils)")
            }
            _ => format!("cannot run {program}: {e}"),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The program and arguments that release `lease`.
fn command(
    bridge: &str,
    lease: &Lease,
    server_duid: Option<&str>,
) -> Result<(&'static str, Vec<String>), String> {
    match lease.ip {
        IpAddr::V4(ip) => {
            let mac = lease
                .mac
                .clone()
                .ok_or_else(|| format!("the lease on {ip} has no MAC"))?;
            let mut args = vec![bridge.to_string(), ip.to_string(), mac];
            args.extend(lease.client_id.clone());
            Ok(("dhcp_release", args))
        }
        IpAddr::V6(ip) => {
            let missing = |what: &str| format!("the lease on {ip} has no {what}");
            let client = lease.client_id.clone().ok_or_else(|| missing("DUID"))?;
            let iaid = lease.iaid.ok_or_else(|| missing("IAID"))?;
            let server =
                server_duid.ok_or_else(|| "the lease file has no server DUID".to_string())?;
            Ok((
                "dhcp_release6",
                vec![
                    "--iface".into(),
                    bridge.to_string(),
                    "--ip".into(),
                    ip.to_string(),
                    "--server-id".into(),
                    server.to_string(),
                    "--client-id".into(),
                    client,
                    "--iaid".into(),
                    iaid.to_string(),
                ],
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: &str, mac: Option<&str>, client_id: Option<&str>, iaid: Option<u32>) -> Lease {
        Lease {
            expiry: None,
            mac: mac.map(str::to_string),
            ip: ip.parse().unwrap(),
            hostname: None,
            client_id: client_id.map(str::to_string),
            iaid,
        }
    }

    #[test]
    fn ipv4_leases_are_released_by_interface_address_mac_and_client_id() {
        let l = lease(
            "192.168.10.57",
            Some("52:54:00:aa:bb:01"),
            Some("01:52"),
            None,
        );
        let (program, args) = command("virbr-nat", &l, None).unwrap();
        assert_eq!(program, "dhcp_release");
        assert_eq!(
            args,
            ["virbr-nat", "192.168.10.57", "52:54:00:aa:bb:01", "01:52"]
        );
    }

    #[test]
    fn ipv6_leases_need_the_client_duid_iaid_and_server_duid() {
        let l = lease("fd00::10", None, Some("00:04:aa"), Some(7));
        let (program, args) = command("br0", &l, Some("00:01:ff")).unwrap();
        assert_eq!(program, "dhcp_release6");
        assert_eq!(
            args.join(" "),
            "--iface br0 --ip fd00::10 --server-id 00:01:ff --client-id 00:04:aa --iaid 7"
        );
        assert!(command("br0", &l, None)
            .unwrap_err()
            .contains("server DUID"));
        let no_iaid = lease("fd00::10", None, Some("00:04:aa"), None);
        assert!(command("br0", &no_iaid, Some("x"))
            .unwrap_err()
            .contains("IAID"));
    }
}
