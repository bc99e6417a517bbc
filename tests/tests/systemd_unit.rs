//! The directory modes of the shipped systemd unit (deploy/kvmnet-agent.service)
//! work: with the run and state directories at the unit's modes, dnsmasq
//! (which drops root) starts and can re-read its hosts file, and a reader that
//! is not root (node_exporter) reaches the metrics textfile.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use kvmnet_e2e::{wait_for, AgentEnv};

const NAT: &str = r#"
[networks.unitnet]
mode = "nat"
bridge = { name = "virbr-unit" }
[[networks.unitnet.ip]]
address = "192.168.77.1/24"
dhcp.ranges = [{ start = "192.168.77.10", end = "192.168.77.20" }]
dhcp.hosts = [{ name = "guest", ip = "192.168.77.5", mac = "52:54:00:77:00:05" }]
"#;

const WAIT: Duration = Duration::from_secs(10);

/// The octal value of `key=` in the shipped unit.
fn unit_mode(key: &str) -> u32 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kvmnet-agent.service"
    );
    let unit = std::fs::read_to_string(path).expect("read the shipped unit");
    let value = unit
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key}= missing from {path}"));
    u32::from_str_radix(value.trim(), 8).unwrap_or_else(|e| panic!("{key}={value}: {e}"))
}

#[test]
fn dnsmasq_and_a_non_root_metrics_reader_work_with_the_units_directory_modes() {
    let env = AgentEnv::new();
    for (dir, key) in [
        (env.run_dir(), "RuntimeDirectoryMode"),
        (env.state_dir(), "StateDirectoryMode"),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(unit_mode(key)))
            .expect("chmod");
    }
    env.write_config("unit.toml", NAT);
    let _daemon = env.spawn(&["--interval", "1h"]);
    let prom = env.state_dir().join("kvmnet.prom");
    wait_for("metrics textfile", WAIT, || prom.exists());
    let pid_file = env.run_dir().join("dnsmasq/unitnet.pid");
    wait_for("dnsmasq started", WAIT, || pid_file.exists());
    // As an unprivileged user, the way dnsmasq re-reads its hosts file on
    // SIGHUP and node_exporter reads the textfile.
    let hosts = env.run_dir().join("dnsmasq/unitnet.hostsfile");
    for file in [&hosts, &prom] {
        let read = env.host().exec(
            "setpriv",
            &[
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "cat",
                file.to_str().expect("UTF-8 path"),
            ],
        );
        assert!(
            read.success(),
            "user nobody cannot read {}: {read:?}",
            file.display()
        );
    }
    let status = env.run(&["--check"]);
    assert!(status.success(), "{status:?}");
}
