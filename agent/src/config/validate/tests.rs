//! Validation rules, one test each, through the whole pipeline.

use super::*;
use crate::config::load::parse_bytes;
use std::path::Path;

fn state(files: &[(&str, &str)]) -> DesiredState {
    let loads = files
        .iter()
        .map(|(name, text)| FileLoad {
            path: Path::new(name).to_path_buf(),
            result: parse_bytes(Path::new(name), text.as_bytes(), None),
        })
        .collect();
    validate(loads)
}

fn errors(text: &str) -> Vec<String> {
    state(&[("n.toml", text)])
        .diagnostics()
        .map(|d| format!("{}: {}", d.position(), d.message))
        .collect()
}

const NAT: &str = "[networks.n]\nmode = \"nat\"\n[[networks.n.ip]]\naddress = \"192.168.10.1/24\"\ndhcp.ranges = [{ start = \"192.168.10.2\", end = \"192.168.10.254\" }]\n";

#[test]
fn probe_and_move_dynamic_need_a_bridged_uplink() {
    let e = errors("[networks.n]\nmode = \"bridge\"\nbridge.move_dynamic = true\nprobe = { target = \"fd00::1\", timeout = \"0s\" }\n");
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].contains("probe applies to mode bridge with an uplink, this network is mode bridge without uplink"), "{e:?}");
    assert!(
        e[1].contains("move_dynamic applies to mode bridge with an uplink"),
        "{e:?}"
    );
    assert!(e[2].contains("must be an IPv4 address"), "{e:?}");
    assert!(e[3].contains("probe timeout 0s is out of range"), "{e:?}");
    let ok = errors("[networks.n]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge.move_dynamic = true\nprobe = { target = \"10.0.0.1\", timeout = \"500ms\" }\n");
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn unmanaged_bridges_are_existing_bridged_ones() {
    let e = errors("[networks.n]\nmode = \"nat\"\nbridge.managed = false\n[[networks.n.ip]]\naddress = \"192.168.10.1/24\"\n");
    assert!(
        e[0].contains("bridge.managed = false needs mode bridge, this network is mode nat"),
        "{e:?}"
    );
    let e = errors("[networks.n]\nmode = \"bridge\"\nbridge.managed = false\n");
    assert!(e[0].contains("needs bridge.name"), "{e:?}");
    let e = errors("[networks.n]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", managed = false }\nprobe.enable = false\n");
    assert!(e[0].contains("not to one it only observes"), "{e:?}");
    let ok = errors("[networks.n]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", managed = false }\n");
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn valid_network_resolves_defaults() {
    let s = state(&[("n.toml", NAT)]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    let n = &s.networks["n"];
    assert_eq!(n.bridge, "kv-n");
    assert!(n.spec.bridge.stp);
}

#[test]
fn range_outside_subnet_is_located() {
    let errs = errors(&NAT.replace("\"192.168.10.254\"", "\"192.168.11.254\""));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("n.toml:5:"), "{errs:?}");
    assert!(
        errs[0].contains("outside the subnet 192.168.10.0/24"),
        "{errs:?}"
    );
}

#[test]
fn all_errors_at_once() {
    let text = NAT
        .replace("\"192.168.10.254\"", "\"192.168.10.1\"")
        .replace(
            "mode = \"nat\"",
            "mode = \"nat\"\nbridge.mtu = 20\nuplink = \"this-name-is-way-too-long\"",
        );
    let errs = errors(&text);
    assert!(errs.len() >= 3, "{errs:?}");
}

#[test]
fn duplicate_name_across_files_names_both() {
    let s = state(&[("a.toml", NAT), ("b.toml", NAT)]);
    assert!(s.networks.is_empty());
    assert_eq!(s.rejected.len(), 2);
    let text: Vec<String> = s.diagnostics().map(|d| d.to_string()).collect();
    assert!(
        text[0].contains("a.toml:1:") && text[0].contains("b.toml:1:"),
        "{text:?}"
    );
}

#[test]
fn overlapping_subnets_between_networks() {
    let other = NAT
        .replace("networks.n", "networks.m")
        .replace("192.168.10.1/24", "192.168.10.129/25")
        .replace("\"192.168.10.2\"", "\"192.168.10.130\"");
    let s = state(&[("a.toml", NAT), ("b.toml", &other)]);
    let text: Vec<String> = s.diagnostics().map(|d| d.to_string()).collect();
    assert!(
        text.iter().any(|t| t.contains("overlaps 192.168.10.0/24")),
        "{text:?}"
    );
    assert!(s.networks.is_empty());
}

#[test]
fn a_broken_file_does_not_reject_the_others() {
    let other = NAT
        .replace("networks.n", "networks.m")
        .replace("192.168.10.", "192.168.20.");
    let s = state(&[
        ("a.toml", "[networks.x]\nmode = \"nta\"\n"),
        ("b.toml", &other),
    ]);
    assert_eq!(s.rejected.len(), 1);
    assert!(s.networks.contains_key("m"));
}
