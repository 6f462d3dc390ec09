//! The offline patcher (issue 4, in progress): plans package upgrades of stopped images
//! from a local repository. Applying them on a qcow2 overlay through libguestfs, the
//! verification and the version records are not built yet.

pub mod plan;

pub use plan::{plan, Plan, Refusal, Request, Step};
