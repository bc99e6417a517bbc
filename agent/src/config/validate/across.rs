//! Rules between networks, across files: names, subnets and forwards one network may claim.

use super::*;

/// One thing a network claims that no other network may claim too.
enum Claim {
    Bridge(String),
    Subnet(IpNet),
    Uplink(String),
    /// An uplink a bridge-mode network enslaves: no other network can use it.
    Enslaved(String),
    /// An overlay's VNI on its UDP port: the kernel takes each pair once.
    Vni {
        vni: u32,
        port: u16,
    },
    Forward {
        proto: Proto,
        ipv4: bool,
        ports: PortRange,
        from: Option<IpNet>,
    },
}

struct Claimed<'a> {
    file: usize,
    network: &'a str,
    path: KeyPath,
    claim: Claim,
}

fn claims<'a>(file: usize, name: &'a str, net: &Network) -> Vec<Claimed<'a>> {
    let at = KeyPath::network(name);
    let mut out = Vec::new();
    let mut push = |path: KeyPath, claim| {
        out.push(Claimed {
            file,
            network: name,
            path,
            claim,
        })
    };
    let bridge = net
        .bridge
        .name
        .clone()
        .unwrap_or_else(|| crate::config::desired::default_bridge_name(name));
    push(at.key("bridge").key("name"), Claim::Bridge(bridge));
    if let Some(uplink) = &net.uplink {
        let claim = if net.mode == Mode::Bridge {
            Claim::Enslaved(uplink.clone())
        } else {
            Claim::Uplink(uplink.clone())
        };
        push(at.key("uplink"), claim);
    }
    for (i, ip) in net.ip.iter().enumerate() {
        push(
            at.key("ip").index(i).key("address"),
            Claim::Subnet(ip.address.0.trunc()),
        );
    }
    for (i, route) in net.routes.iter().enumerate() {
        push(
            at.key("routes").index(i).key("to"),
            Claim::Subnet(route.to.0.trunc()),
        );
    }
    if let Some(overlay) = &net.overlay {
        push(
            at.key("overlay").key("vxlan").key("vni"),
            Claim::Vni {
                vni: overlay.vxlan.vni,
                port: overlay.vxlan.port,
            },
        );
    }
    for (i, pf) in net.port_forwards.iter().enumerate() {
        push(
            at.key("port_forwards").index(i).key("port"),
            Claim::Forward {
                proto: pf.proto,
                ipv4: pf.to.addr.is_ipv4(),
                ports: pf.port,
                from: pf.from.map(|c| c.0.trunc()),
            },
        );
    }
    out
}

/// Why two claims of different networks conflict, if they do.
fn conflict(a: &Claimed, b: &Claimed) -> Option<String> {
    match (&a.claim, &b.claim) {
        (Claim::Bridge(x), Claim::Bridge(y)) if x == y => Some(format!(
            "bridge {x:?} is used by network {:?} too",
            a.network
        )),
        (Claim::Uplink(x) | Claim::Enslaved(x), Claim::Bridge(y))
        | (Claim::Bridge(y), Claim::Uplink(x) | Claim::Enslaved(x))
            if x == y =>
        {
            Some(format!(
                "{x:?} is network {:?}'s bridge and the other's uplink",
                a.network
            ))
        }
        (Claim::Enslaved(x), Claim::Uplink(y) | Claim::Enslaved(y))
        | (Claim::Uplink(y), Claim::Enslaved(x))
            if x == y =>
        {
            Some(format!("{x:?} is enslaved into a bridge by network {:?}, so it cannot serve another network", a.network))
        }
        (Claim::Vni { vni: x, port: p }, Claim::Vni { vni: y, port: q }) if x == y && p == q => {
            Some(format!(
                "VNI {y} on port {q} is network {:?}'s overlay too",
                a.network
            ))
        }
        (Claim::Subnet(x), Claim::Subnet(y)) if subnets_overlap(*x, *y) => {
            Some(format!("{y} overlaps {x} of network {:?}", a.network))
        }
        (
            Claim::Forward {
                proto: p1,
                ipv4: v1,
                ports: r1,
                from: f1,
            },
            Claim::Forward {
                proto: p2,
                ipv4: v2,
                ports: r2,
                from: f2,
            },
        ) if p1 == p2 && v1 == v2 && r1.overlaps(*r2) && froms_overlap(*f1, *f2) => Some(format!(
            "{p2} port {r2} is forwarded by network {:?} too ({p1} {r1})",
            a.network
        )),
        _ => None,
    }
}

pub(super) fn froms_overlap(a: Option<IpNet>, b: Option<IpNet>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => subnets_overlap(a, b),
        _ => true,
    }
}

/// Rules between networks (also of different files): duplicate names, and
/// bridges, uplinks, subnets and forwarded ports claimed twice. Every file
/// involved in a conflict gets a diagnostic.
pub(super) fn check_across(files: &[ParsedFile]) -> BTreeMap<usize, Vec<Diagnostic>> {
    let mut out: BTreeMap<usize, Vec<Diagnostic>> = BTreeMap::new();
    let mut first_definition: HashMap<&str, usize> = HashMap::new();
    let mut all = Vec::new();
    for (i, file) in files.iter().enumerate() {
        for (name, net) in &file.networks {
            if let Some(&j) = first_definition.get(name.as_str()) {
                let here = KeyPath::network(name);
                for (k, other) in [(i, j), (j, i)] {
                    let d = located(
                        &files[k],
                        &here,
                        Target::Key,
                        format!("network {name:?} is defined in two files"),
                    )
                    .with_note(format!(
                        "also defined at {}",
                        position(&files[other], &here, Target::Key)
                    ));
                    out.entry(k).or_default().push(d);
                }
                continue;
            }
            first_definition.insert(name, i);
            all.extend(claims(i, name, net));
        }
    }
    for (bi, b) in all.iter().enumerate() {
        for a in &all[..bi] {
            if a.network == b.network {
                continue;
            }
            if let Some(why) = conflict(a, b) {
                let d = located(&files[b.file], &b.path, Target::Value, why).with_note(format!(
                    "network {:?} claims it at {}",
                    a.network,
                    position(&files[a.file], &a.path, Target::Value)
                ));
                out.entry(b.file).or_default().push(d);
                if let Some(why_a) = conflict(b, a) {
                    let d =
                        located(&files[a.file], &a.path, Target::Value, why_a).with_note(format!(
                            "network {:?} claims it at {}",
                            b.network,
                            position(&files[b.file], &b.path, Target::Value)
                        ));
                    out.entry(a.file).or_default().push(d);
                }
            }
        }
    }
    out
}
