//! rvsadm: ipvsadm's command line over rvsd's control socket
//! (specs/ipvs.md §6).
//!
//! [`parse`] turns argv into a [`Command`] exactly as ipvsadm v1.31 reads it
//! (`A: ipvsadm.c parse_options`, `process_options`, `generic_opt_check`):
//! the command comes first, options follow in any order, popt's short
//! clusters (`-Lnc`), `--long=value` and `--long value`; defaults (wlc, `-g`,
//! weight 1, `-p` 360, mask /32) are filled in so every request is a full
//! description (-E/-e replace, §6.1). [`render`] turns the daemon's
//! [`Response`] into ipvsadm's output byte for byte (§6.2, §6.3).
//!
//! Invariants: parsing never touches the socket, the environment or stdin
//! ([`restore`] takes the text); every error carries ipvsadm's message and
//! exit status (`fail()` exits 2; popt errors and "Try `ipvsadm -h'" exit
//! 255, ipvsadm's `exit(-1)`).
//!
//! rvs's limits: IPv4 and numeric addresses only (no DNS on the appliance),
//! TCP/UDP/fwmark services, IPIP tunnels, no persistence engines.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod help;
mod parse;
mod render;

use std::path::PathBuf;

use crate::api::{Request, DEFAULT_SOCKET};

pub use parse::{parse, restore};
pub use render::{largenum, outcome, render, Outcome};

/// A usage error: what ipvsadm prints to stderr (without the final newline)
/// and the status it exits with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

impl CliError {
    /// ipvsadm's `fail(2, ...)`.
    pub(crate) fn fail(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), exit_code: 2 }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The listing options of `-L` (ipvsadm's `FMT_*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListFormat {
    /// `-n`: accepted; rvs always prints numbers (it resolves no names).
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    /// `--exact` / `-X`.
    pub exact: bool,
    pub nosort: bool,
    pub tun_info: bool,
}

/// How to print the reply to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// `-L`: the table; `one_service` when a service was named (ipvsadm then
    /// prints no "IP Virtual Server version" line).
    Services { format: ListFormat, one_service: bool },
    /// `-Lc`.
    Conns { persistent_conn: bool },
    /// `-L --timeout`.
    Timeouts,
    /// `-L --daemon`.
    Daemons,
    /// `-S`: the rules (§6.3).
    Save,
    /// `rvsadm ports`.
    Ports,
    /// `rvsadm neigh`.
    Neighbors,
    /// `rvsadm health`.
    Health,
    /// `rvsadm config ...`: the daemon's text.
    Text,
    /// A command that changes state: nothing is printed on success.
    Done,
}

/// What one invocation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send `request`, print the reply as `view` says (as JSON with `--json`).
    /// `-S` is this with `Op::List` of services and [`View::Save`].
    Send { request: Request, view: View, json: bool },
    /// `-R`: read stdin, [`restore`] it into one `Op::Batch`, send that.
    Restore { json: bool },
    /// `-h`: usage on stdout, exit 0.
    Help,
    /// `-v`.
    Version,
}

/// A parsed command line: the program name for messages (`rvsadm`, or
/// `ipvsadm` when run through a symlink of that name), `--socket` if given,
/// and the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub prog: String,
    pub socket: Option<PathBuf>,
    pub command: Command,
}

impl Invocation {
    /// The control socket: `--socket`, else `$RVS_SOCKET`, else
    /// [`DEFAULT_SOCKET`].
    pub fn socket_path(&self, env: Option<&str>) -> PathBuf {
        match (&self.socket, env) {
            (Some(p), _) => p.clone(),
            (None, Some(e)) if !e.is_empty() => PathBuf::from(e),
            _ => PathBuf::from(DEFAULT_SOCKET),
        }
    }
}

/// The name messages use: `ipvsadm` when argv[0]'s file name is `ipvsadm`,
/// `rvsadm` otherwise.
pub fn program_name(argv0: Option<&str>) -> String {
    let base = argv0.and_then(|a| std::path::Path::new(a).file_name()).and_then(|f| f.to_str());
    match base {
        Some("ipvsadm") => "ipvsadm".to_owned(),
        _ => "rvsadm".to_owned(),
    }
}
