//! Control plane of rvs: the protocol shared by rvsd's control server and the
//! `rvsadm` CLI, so the two can never drift apart.
#![deny(unsafe_code)]

pub mod cli;
pub mod control;
pub mod health;
pub mod marklist;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod state;
pub mod sync;

/// The version string both sides print (`rvsadm -v`, `rvsd --version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
