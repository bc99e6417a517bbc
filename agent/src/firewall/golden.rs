//! Golden listings: `agent/tests/golden/nft/list-<nft version>.json` hold
//! what `nft -j list table inet kvmnet` prints once the table rendered for
//! [`NETWORKS`] is in place. Two things are checked against each:
//!
//! - the `nftables` crate's typed schema reads the whole listing and writes
//!   it back as the same JSON value (key order aside: nft prints a rule's
//!   `handle` and `comment` before its `expr`, the crate after);
//! - the table kvmnet renders equals, as typed values, the chains and rules
//!   the listing holds (handles aside): what the diff relies on to find an
//!   unchanged table in sync.
//!
//! `list-1.0.6.json` is nft 1.0.6's own output (Debian 12). After an
//! intended change, regenerate the listing of the installed nft with
//! `KVMNET_BLESS=1 cargo test -p kvmnet --lib firewall::golden` (as root:
//! the table is applied and listed in a network namespace of its own) and
//! review the diff. `KVMNET_BLESS` blesses every golden file of the crate.
//!
//! `list-1.1.3.json` is constructed, as nft 1.1.3 cannot be installed on
//! the build machine: it is the 1.0.6 listing with the metainfo object of
//! 1.1.3 (`"version": "1.1.3", "release_name": "Commodore Bullmoose #4"`;
//! `json_schema_version` stays 1). Everything else is the same bytes:
//! handles come from the kernel, not from nft, and nft 1.1's src/json.c
//! prints the objects, statements and expressions this table uses (rule,
//! chain, match, meta, payload, ct, fib, prefix, range, set, jump,
//! masquerade, dnat, reject) with the same keys, in the same order, as
//! 1.0.6 (flag arrays such as fib's `["daddr"]` stay arrays).

use std::path::{Path, PathBuf};

use nftables::schema::Nftables;
use serde_json::Value;

use super::nft::{parse_listing, transaction};
use super::{wanted, Action, Table, FAMILY, TABLE};
use crate::testutil::desired;

/// Every mode, port forwards of each kind, IPv6 routed and masqueraded.
const NETWORKS: &str = r#"
[networks.nat]
mode = "nat"
uplink = "eno1"
bridge = { name = "virbr-nat" }
[[networks.nat.ip]]
address = "192.168.10.1/24"
[[networks.nat.ip]]
address = "fd10::1/64"
[[networks.nat.port_forwards]]
proto = "tcp"
port = 8080
to = "192.168.10.10:80"
from = "10.12.17.0/24"
[[networks.nat.port_forwards]]
proto = "udp"
port = "5000-5001"
to = "192.168.10.10:6000"
[[networks.nat.port_forwards]]
proto = "tcp"
port = "7000-7010"
to = "192.168.10.11"

[networks.nat6]
mode = "nat"
bridge = { name = "virbr-nat6" }
nat = { ipv6 = true, ports = "2000-3000" }
[[networks.nat6.ip]]
address = "192.168.12.1/24"
[[networks.nat6.ip]]
address = "fd12::1/64"

[networks.routed]
mode = "route"
uplink = "eno1"
bridge = { name = "virbr-routed" }
[[networks.routed.ip]]
address = "192.168.20.1/24"
[[networks.routed.ip]]
address = "fd20::1/64"

[networks.isolated]
mode = "isolated"
bridge = { name = "virbr-iso" }
[[networks.isolated.ip]]
address = "192.168.30.1/24"

[networks.open]
mode = "open"
bridge = { name = "virbr-open" }
[[networks.open.ip]]
address = "192.168.40.1/24"
"#;

const VERSIONS: [&str; 2] = ["1.0.6", "1.1.3"];

fn golden(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/nft/list-{version}.json"))
}

fn rendered() -> Table {
    let state = desired(NETWORKS);
    assert!(state.rejected.is_empty(), "{:?}", state.rejected);
    wanted(&state, &crate::core::LeaveAlone::new(), None)
}

/// The golden listing of nft `version` (blessed first, once, when asked).
fn read(version: &str) -> String {
    static BLESSED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("KVMNET_BLESS").is_some() {
        BLESSED.call_once(bless);
    }
    let path = golden(version);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with KVMNET_BLESS=1)", path.display()))
}

/// Applies the rendered table in a new network namespace (of a thread of
/// its own: `nft` forked from it runs there too) and writes the listing of
/// the installed nft into its golden file.
fn bless() {
    let transaction = serde_json::to_string(&transaction(&Action::Replace(rendered()))).unwrap();
    let listing = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("blessing needs root: unshare(CLONE_NEWNET)");
        let nft = |args: &[&str], input: Option<&str>| {
            use std::io::Write;
            let mut child = std::process::Command::new("nft")
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run nft");
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(input.unwrap_or_default().as_bytes())
                .unwrap();
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "nft {args:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        nft(&["-j", "-f", "-"], Some(&transaction));
        nft(&["-j", "list", "table", FAMILY, TABLE], None)
    })
    .join()
    .unwrap();
    let document: Value = serde_json::from_str(&listing).unwrap();
    let version = document["nftables"][0]["metainfo"]["version"]
        .as_str()
        .expect("a metainfo version");
    std::fs::write(golden(version), listing).unwrap();
}

#[test]
fn each_listing_reads_into_the_typed_schema_and_writes_back_the_same_json() {
    for version in VERSIONS {
        let text = read(version);
        let typed: Nftables =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("nft {version}'s listing: {e}"));
        let listed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            listed,
            "nft {version}"
        );
        assert_eq!(
            listed["nftables"][0]["metainfo"]["version"], version,
            "the listing of nft {version}"
        );
    }
}

#[test]
fn the_rendered_table_is_what_each_nft_lists() {
    let wanted = rendered();
    assert!(
        wanted.rules.len() > 40,
        "a rich table: {}",
        wanted.rules.len()
    );
    for version in VERSIONS {
        let listed = parse_listing(&read(version)).unwrap();
        assert!(listed.unparseable.is_empty(), "nft {version}");
        // nft lists base chains and regular ones in creation order, but the
        // diff takes chains in any order: compare them as sets.
        let names = |t: &Table| {
            let mut chains = t.chains.clone();
            chains.sort_by(|a, b| a.name.cmp(&b.name));
            chains
        };
        assert_eq!(names(&listed.table), names(&wanted), "nft {version}");
        for chain in &wanted.chains {
            let want: Vec<_> = wanted.rules_in(&chain.name).collect();
            let have: Vec<_> = listed.table.rules_in(&chain.name).collect();
            assert_eq!(have, want, "nft {version}, chain {}", chain.name);
        }
        assert!(
            super::diff::diff(&wanted, Some(&listed)).is_empty(),
            "nft {version}"
        );
    }
}
