//! The desired state: the files' model, their parsing with located
//! diagnostics, validation, and the last good copy of each file.

pub mod desired;
pub mod diagnostic;
pub mod lastgood;
pub mod load;
pub mod locate;
pub mod model;
pub mod parse;
pub mod validate;
