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

/// The version string both sides print (`rvsadm -v`, `rvsd --version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
