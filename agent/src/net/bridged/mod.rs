//! Bridged mode: the host's uplink moved into a bridge of ours, with its
//! addresses and routes, probed, and rolled back exactly on failure.
//!
//! [`lan`] decides what of the uplink's configuration is the LAN's and
//! records it; [`takeover`] plans the take-over and the give-back (pure);
//! [`rollback`] carries them out and holds a rolled-back network;
//! [`managers`] warns about network managers that would undo the move.

pub mod lan;
pub mod managers;
pub mod rollback;
pub mod takeover;
