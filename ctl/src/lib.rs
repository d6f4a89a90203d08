//! Control plane of rvs: the protocol shared by rvsd's control server and the
//! `rvsadm` CLI, so the two can never drift apart.
#![deny(unsafe_code)]

pub mod api;
pub mod cli;
pub mod control;
pub mod health;
pub mod marklist;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod sync;

// The old names, for rvsd's src/main.rs only, which is being moved to its
// own crate (issue 14); they go when it says `ctl::api` and `ctl::snapshot`.
#[doc(hidden)]
pub use api as proto;
#[doc(hidden)]
pub use snapshot as state;

/// The version string both sides print (`rvsadm -v`, `rvsd --version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
