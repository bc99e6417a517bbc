//! What a guest sees compared with libvirt's dnsmasq for the same network:
//! router advertisements on IPv6 subnets without DHCP (SLAAC), DNS through
//! the host's resolvers next to per-domain forwarders, the local domain and
//! plain names, PXE (boot file and TFTP), SRV and TXT records, per-host lease
//! times; and that a new reservation is a SIGHUP, a dual-stack reservation
//! no dnsmasq warning. DHCPv6 reservations by DUID are covered by golden
//! files only (agent/tests/golden/dnsmasq/pxe.*): busybox has no DHCPv6
//! client.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use kvmnet_e2e::{
    dhcp_lease, resolve, veth, wait_for, wait_for_value, AgentEnv, Background, Netns,
};

const WAIT: Duration = Duration::from_secs(20);

/// A guest with the address DHCP gave it configured, ready to ask DNS.
fn guest_with_lease(env: &AgentEnv, bridge: &str, mac: Option<&str>, prefix: u8) -> Netns {
    let vm = env.guest(bridge, mac);
    let lease = dhcp_lease(&vm, "eth0", None).expect("guest gets a lease");
    vm.add_addr("eth0", &format!("{}/{prefix}", lease.ip));
    vm
}

/// The dnsmasq log of `network` once dnsmasq has read its hosts file.
fn log_after_hosts_read(env: &AgentEnv, network: &str) -> String {
    let log = env.state_dir().join(format!("dnsmasq/{network}.log"));
    let hosts = env.run_dir().join(format!("dnsmasq/{network}.hostsfile"));
    let read = format!("read {}", hosts.display());
    wait_for_value(
        &format!("dnsmasq of {network} reading {read}"),
        WAIT,
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains(&read).then_some(text)
        },
    )
}

const STATIC_HOSTS: &str = r#"
[networks.hup]
mode = "nat"
bridge = { name = "kvl-hup", stp = false }
[[networks.hup.ip]]
address = "192.168.170.1/24"
dhcp.ranges = [{ start = "192.168.170.100", end = "192.168.170.150" }]
dhcp.hosts = [{ mac = "52:54:00:00:70:10", ip = "192.168.170.10", name = "first" }]
"#;

#[test]
fn a_new_static_host_is_a_sighup_of_the_same_dnsmasq_and_served_at_once() {
    let env = AgentEnv::new();
    env.write_config("hup.toml", STATIC_HOSTS);
    env.run(&["--once"]).assert_success();
    let pid = env.dnsmasq_pid("hup");
    let more = STATIC_HOSTS.replace(
        "name = \"first\" }]",
        "name = \"first\" }, { mac = \"52:54:00:00:70:11\", ip = \"192.168.170.11\", name = \"second\" }]",
    );
    env.write_config("hup.toml", &more);
    let reload = env.run(&["--once"]);
    reload.assert_success();
    assert!(reload.stdout().contains("send SIGHUP"), "{reload}");
    assert!(
        !reload.stdout().contains("~ dnsmasq hup on kvl-hup config"),
        "no restart: {reload}"
    );
    assert_eq!(env.dnsmasq_pid("hup"), pid, "a new host must not restart");
    let vm = env.guest("kvl-hup", Some("52:54:00:00:70:11"));
    let lease = dhcp_lease(&vm, "eth0", None).expect("new static guest gets a lease");
    assert_eq!(lease.ip, "192.168.170.11");
    env.run(&["--check"]).assert_code(0);
}

/// Every example but the bridged one (see [`AgentEnv::write_examples`])
/// starts its dnsmasq without a warning, the dual-stack reservation of
/// lab.toml included.
#[test]
fn the_examples_start_dnsmasq_without_warnings() {
    let env = AgentEnv::new();
    env.write_examples();
    env.run(&["--once"]).assert_success();
    let hostsfile = std::fs::read_to_string(env.run_dir().join("dnsmasq/lab.hostsfile")).unwrap();
    assert!(
        hostsfile.contains("52:54:00:00:50:10,192.168.50.10,[fd00:50::10],web\n"),
        "one line for web's two addresses: {hostsfile}"
    );
    let mut networks: Vec<String> = std::fs::read_dir(env.run_dir().join("dnsmasq"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".conf").map(str::to_string)
        })
        .collect();
    networks.sort();
    assert!(networks.len() >= 5, "{networks:?}");
    for network in networks {
        let log = log_after_hosts_read(&env, &network);
        // dnsmasq checks for upstream servers before it reads the servers
        // file, so that warning is the one every instance logs.
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("duplicate") || l.to_ascii_lowercase().contains("warning"))
            .filter(|l| !l.contains("no upstream servers configured"))
            .collect();
        assert!(
            warnings.is_empty(),
            "dnsmasq of {network} warned: {warnings:?}\n{log}"
        );
    }
}

#[test]
fn an_ipv6_subnet_without_dhcp_gives_guests_a_slaac_address_and_a_route() {
    let env = AgentEnv::new();
    env.write_config(
        "slaac.toml",
        r#"
[networks.slaac]
mode = "nat"
bridge = { name = "kvl-slaac", stp = false }
[[networks.slaac.ip]]
address = "192.168.171.1/24"
[[networks.slaac.ip]]
address = "fd00:171::1/64"
"#,
    );
    env.run(&["--once"]).assert_success();
    let vm = env.guest("kvl-slaac", Some("52:54:00:00:71:10"));
    // EUI-64 of the MAC, in the advertised prefix.
    wait_for(
        "a SLAAC address past duplicate address detection",
        WAIT,
        || {
            let out = vm.ip_ok(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
            out.contains("fd00:171::5054:ff:fe00:7110/64") && !out.contains("tentative")
        },
    );
    let route = wait_for_value("a default route by RA", WAIT, || {
        let out = vm.ip_ok(&["-6", "route", "show", "default"]);
        out.contains("via fe80:").then_some(out)
    });
    assert!(route.contains("dev eth0 proto ra"), "{route}");
}

/// A DNS server of the host's LAN: a second dnsmasq in a `lan` namespace
/// behind a veth, serving `records` (`host-record` values), and made the
/// host's only resolver. It runs while the returned guard lives.
fn upstream_dns(env: &AgentEnv, records: &[&str]) -> (Netns, Background) {
    let lan = Netns::new("lan");
    veth(env.host(), "kvl-up", &lan, "eth0");
    env.host().add_addr("kvl-up", "198.51.100.1/24");
    lan.add_addr("eth0", "198.51.100.53/24");
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--bind-interfaces".into(),
        "--listen-address=198.51.100.53".into(),
        "--pid-file=".into(),
    ];
    args.extend(records.iter().map(|r| format!("--host-record={r}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let upstream = lan.spawn("dnsmasq", &args);
    wait_for("the upstream DNS listening", WAIT, || {
        let out = lan.exec("busybox", &["netstat", "-lun"]).stdout();
        out.contains("198.51.100.53:53 ")
    });
    env.host().set_resolv_conf("nameserver 198.51.100.53\n");
    (lan, upstream)
}

#[test]
fn domain_forwarders_keep_the_host_resolvers_and_the_domain_forwards_unless_local_only() {
    let env = AgentEnv::new();
    let _lan = upstream_dns(
        &env,
        &[
            "outside.test,203.0.113.7",
            "a.viahost.test,203.0.113.8",
            "upstream.lab.test,203.0.113.9",
            "plain,203.0.113.10",
        ],
    );
    let forwarding = r#"
[networks.fwd]
mode = "nat"
bridge = { name = "kvl-fwd", stp = false }
dns = { domain = "lab.test", local_only = false, forwarders = ["/corp.test/192.0.2.1", "/viahost.test/#"] }
[[networks.fwd.ip]]
address = "192.168.172.1/24"
dhcp.ranges = [{ start = "192.168.172.100", end = "192.168.172.150" }]
"#;
    env.write_config("fwd.toml", forwarding);
    env.run(&["--once"]).assert_success();
    let vm = guest_with_lease(&env, "kvl-fwd", None, 24);
    let dns = "192.168.172.1";
    assert_eq!(resolve(&vm, "outside.test", dns), ["203.0.113.7"]);
    assert_eq!(resolve(&vm, "a.viahost.test", dns), ["203.0.113.8"]);
    assert_eq!(resolve(&vm, "upstream.lab.test", dns), ["203.0.113.9"]);
    assert_eq!(resolve(&vm, "plain", dns), ["203.0.113.10"]);

    // libvirt's localOnly='yes' and forwardPlainNames='no'.
    let local = forwarding.replace("local_only = false,", "forward_plain_names = false,");
    env.write_config("fwd.toml", &local);
    env.run(&["--once"]).assert_success();
    assert_eq!(resolve(&vm, "outside.test", dns), ["203.0.113.7"]);
    assert!(resolve(&vm, "upstream.lab.test", dns).is_empty());
    assert!(resolve(&vm, "plain", dns).is_empty());
}

#[test]
fn pxe_tftp_boot_file_per_host_lease_srv_and_txt_reach_the_guest() {
    let env = AgentEnv::new();
    let tftp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tftp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = tftp.path().join("pxelinux.0");
    std::fs::write(&image, "kvmnet pxe image\n").unwrap();
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.write_config(
        "pxe.toml",
        &format!(
            r#"
[networks.pxe]
mode = "nat"
bridge = {{ name = "kvl-pxe", stp = false }}
dns = {{ domain = "pxe.test", srv = [{{ service = "ldap", protocol = "tcp", target = "dir.pxe.test", port = 389, priority = 10, weight = 5 }}], txt = [{{ name = "info.pxe.test", value = "lab network" }}] }}
[[networks.pxe.ip]]
address = "192.168.173.1/24"
tftp_root = "{}"
dhcp.ranges = [{{ start = "192.168.173.100", end = "192.168.173.150" }}]
dhcp.lease = "12h"
dhcp.bootp = {{ file = "pxelinux.0" }}
dhcp.hosts = [{{ mac = "52:54:00:00:73:10", ip = "192.168.173.10", name = "short", lease = "5m" }}]
"#,
            tftp.path().display()
        ),
    );
    env.run(&["--once"]).assert_success();

    let dynamic = env.guest("kvl-pxe", None);
    let offer = dhcp_lease(&dynamic, "eth0", None).expect("lease");
    assert_eq!(offer.boot_file.as_deref(), Some("pxelinux.0"), "{offer:?}");
    assert_eq!(offer.lease.as_deref(), Some("43200"), "{offer:?}");
    let fixed = env.guest("kvl-pxe", Some("52:54:00:00:73:10"));
    let offer = dhcp_lease(&fixed, "eth0", None).expect("static lease");
    assert_eq!(offer.ip, "192.168.173.10");
    assert_eq!(
        offer.lease.as_deref(),
        Some("300"),
        "per-host lease: {offer:?}"
    );

    fixed.add_addr("eth0", "192.168.173.10/24");
    let fetched = tempfile::tempdir().unwrap();
    let local = fetched.path().join("boot");
    let local = local.to_str().unwrap();
    fixed.exec_ok(
        "busybox",
        &[
            "tftp",
            "-g",
            "-r",
            "pxelinux.0",
            "-l",
            local,
            "192.168.173.1",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(local).unwrap(),
        "kvmnet pxe image\n"
    );

    let srv = fixed.exec_ok(
        "busybox",
        &[
            "nslookup",
            "-type=srv",
            "_ldap._tcp.pxe.test",
            "192.168.173.1",
        ],
    );
    assert!(srv.contains("10 5 389 dir.pxe.test"), "{srv}");
    let txt = fixed.exec_ok(
        "busybox",
        &["nslookup", "-type=txt", "info.pxe.test", "192.168.173.1"],
    );
    assert!(txt.contains("lab network"), "{txt}");
}
