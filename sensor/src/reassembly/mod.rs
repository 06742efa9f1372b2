//! TCP reassembly of handshake bytes: a connection table keyed by the
//! 4-tuple, and per direction a bounded in-order stream; flow accounting
//! of every connection's bytes, and its periodic reports (`reports`).

pub mod accounting;
pub mod reports;
mod stream;
mod table;

pub use stream::{Push, Stream};
pub use table::{
    ConnHandler, ConnMeta, ConnTable, Control, ReassemblyConfig, ReassemblyStats, Side,
};
