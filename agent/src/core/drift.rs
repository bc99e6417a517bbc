//! Drift: one difference between the desired and the observed state, in the
//! words every subsystem (kernel, firewall, dnsmasq) reports it.

use std::fmt;

use serde::Serialize;

/// What kind of object drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Bridge,
    Address,
    Route,
    Sysctl,
    Firewall,
    Dnsmasq,
    Port,
    Lease,
    /// An overlay's VXLAN device.
    Vxlan,
    /// A flood entry of a VXLAN device: one remote peer.
    Fdb,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Bridge => "bridge",
            Resource::Address => "address",
            Resource::Route => "route",
            Resource::Sysctl => "sysctl",
            Resource::Firewall => "firewall",
            Resource::Dnsmasq => "dnsmasq",
            Resource::Port => "port",
            Resource::Lease => "lease",
            Resource::Vxlan => "vxlan",
            Resource::Fdb => "fdb",
        })
    }
}

/// How an object differs: missing (+), extra (-) or changed (~).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Missing,
    Extra,
    Changed,
}

impl Change {
    pub fn sign(self) -> char {
        match self {
            Change::Missing => '+',
            Change::Extra => '-',
            Change::Changed => '~',
        }
    }
}

/// One difference between desired and observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The network it belongs to; `None` for host-wide settings (ip_forward).
    pub network: Option<String>,
    pub resource: Resource,
    /// The object: "virbr-nat", "192.168.10.1/24 on virbr-nat", "net.ipv4.ip_forward".
    pub object: String,
    pub change: Change,
    /// The attribute that differs, for changed objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wanted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.change.sign(),
            self.resource,
            self.object
        )?;
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        match (&self.wanted, &self.found, self.change) {
            (Some(w), Some(found), _) => write!(f, ": wanted {w}, found {found}"),
            (_, _, Change::Missing) => write!(f, ": missing"),
            (_, _, Change::Extra) => write!(f, ": not in the desired state"),
            _ => Ok(()),
        }
    }
}
