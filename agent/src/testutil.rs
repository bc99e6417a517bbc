//! Helpers of the unit tests.

use std::path::Path;

use crate::config::desired::DesiredState;
use crate::config::load::{parse_bytes, FileLoad};
use crate::kernel::Link;

/// The desired state of one TOML file, `t.toml`, valid or not.
pub fn desired(text: &str) -> DesiredState {
    let path = Path::new("t.toml");
    DesiredState::from_loads(vec![FileLoad {
        path: path.to_path_buf(),
        result: parse_bytes(path, text.as_bytes(), None),
    }])
}

/// An observed link without MAC or bridge attributes: with an alias, a
/// bridge (the only kind kvmnet owns), else a device without kind.
pub fn link(index: u32, name: &str, master: Option<u32>, alias: Option<&str>) -> Link {
    Link {
        index,
        name: name.into(),
        kind: alias.map(|_| "bridge".into()),
        admin_up: true,
        mtu: 1500,
        mac: None,
        master,
        alias: alias.map(Into::into),
        bridge: None,
        vxlan: None,
        group: 0,
    }
}
