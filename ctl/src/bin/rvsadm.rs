//! rvsadm: the ipvsadm-compatible command line over rvsd's control socket.
//!
//! This build knows only `-v`/`--version`; the ipvsadm command set arrives with
//! the control socket (specs/ipvs.md §6).
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v") | Some("--version") => {
            // ipvsadm prints "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)".
            println!("rvsadm v{} (rvs)", ctl::VERSION);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("rvsadm: this build has no control socket yet; only -v works");
            ExitCode::from(2)
        }
    }
}
