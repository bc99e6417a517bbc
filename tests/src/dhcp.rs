//! DHCP and DNS clients inside a namespace: busybox udhcpc and nslookup.

use std::os::unix::fs::PermissionsExt;

use crate::netns::Netns;

/// What a DHCP server offered and the client took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLease {
    pub ip: String,
    /// The default route offered, if any.
    pub router: Option<String>,
    pub dns: Option<String>,
    /// Lease time in seconds.
    pub lease: Option<String>,
    /// The boot file (PXE) and the server to fetch it from (siaddr).
    pub boot_file: Option<String>,
    pub next_server: Option<String>,
}

/// Script for udhcpc: prints the lease it got instead of configuring the
/// interface (the test applies what it needs).
const SCRIPT: &str = "#!/bin/sh\n[ \"$1\" = bound ] && \
     echo \"lease ip=$ip router=$router dns=$dns lease=$lease boot_file=$boot_file siaddr=$siaddr\"\n\
     exit 0\n";

/// Asks for a lease on `ifname` in `vm` (`request`: the address to ask for,
/// as a guest renewing after a reboot does). `None` when no server answered
/// within a few seconds.
#[track_caller]
pub fn dhcp_lease(vm: &Netns, ifname: &str, request: Option<&str>) -> Option<DhcpLease> {
    let dir = tempfile::tempdir().expect("udhcpc script dir");
    let script = dir.path().join("udhcpc.sh");
    std::fs::write(&script, SCRIPT).expect("write udhcpc script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("chmod udhcpc script");
    let script = script.to_str().expect("UTF-8 temp path");
    // -f foreground, -q quit once bound, -n fail when no lease; 10 tries of
    // 1s: a loaded machine (parallel tests) can leave the first ones unanswered.
    let mut args = vec![
        "udhcpc", "-f", "-q", "-n", "-t", "10", "-T", "1", "-i", ifname, "-s", script,
    ];
    if let Some(ip) = request {
        args.extend(["-r", ip]);
    }
    let out = vm.exec("busybox", &args);
    let stdout = out.stdout();
    let line = stdout.lines().find_map(|l| l.strip_prefix("lease "))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Some(DhcpLease {
        ip: field("ip")?,
        router: field("router"),
        dns: field("dns"),
        lease: field("lease"),
        boot_file: field("boot_file"),
        next_server: field("siaddr"),
    })
}

/// The addresses `name` resolves to through the DNS server `server`, asked
/// from `vm` with busybox nslookup (empty when it does not resolve).
pub fn resolve(vm: &Netns, name: &str, server: &str) -> Vec<String> {
    let out = vm.exec("busybox", &["nslookup", "-type=a", name, server]);
    // The answer section follows the "Name:" line; the server's own
    // "Address:" line comes before it.
    out.stdout()
        .split_once("Name:")
        .map(|(_, answer)| {
            answer
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}
