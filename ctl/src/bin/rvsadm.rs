//! rvsadm: the ipvsadm-compatible command line over rvsd's control socket
//! (specs/ipvs.md §6). Parsing and printing live in `ctl::cli`; this file
//! only reads stdin for `-R`, talks to the socket (one JSON request line,
//! one JSON reply line) and exits with ipvsadm's status.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use ctl::api::{Request, Response, MAX_REQUEST_BYTES};
use ctl::cli::{self, Command, View};

/// How long to wait for rvsd's reply (a large restore included).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let prog = cli::program_name(argv.first().map(String::as_str));
    let inv = match cli::parse(&argv) {
        Ok(i) => i,
        Err(e) => return fail(&e.message, e.exit_code),
    };
    let socket = inv.socket_path(std::env::var("RVS_SOCKET").ok().as_deref());
    let command = match inv.command {
        Command::Help => {
            print!("{}", cli::help::usage(&prog));
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            print!("{}", cli::help::version(&prog));
            return ExitCode::SUCCESS;
        }
        Command::Restore { json } => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                return fail(&format!("{prog}: cannot read the rules from stdin: {e}"), 2);
            }
            match cli::restore(&prog, &text) {
                Ok(request) => Command::Send { request, view: View::Done, json },
                Err(e) => return fail(&e.message, e.exit_code),
            }
        }
        c @ Command::Send { .. } => c,
    };
    let Command::Send { request, .. } = &command else {
        return ExitCode::SUCCESS;
    };
    let response = match exchange(&socket, request) {
        Ok(r) => r,
        Err(Failure::Connect(e)) => {
            // ipvsadm: "Can't initialize ipvs: ..." and exit 2 when the module is missing.
            return fail(
                &format!(
                    "{prog}: cannot connect to rvsd at {}: {} (is rvsd running? --socket or RVS_SOCKET select \
                     another)",
                    socket.display(),
                    os_text(&e)
                ),
                2,
            );
        }
        Err(Failure::Talk(why)) => {
            return fail(&format!("{prog}: rvsd at {}: {why}", socket.display()), 1);
        }
    };
    let out = cli::outcome(&command, &response);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    let _ = std::io::stdout().flush();
    exit(out.exit_code)
}

enum Failure {
    Connect(std::io::Error),
    Talk(String),
}

/// Sends `request` as one JSON line and reads one JSON line back.
fn exchange(socket: &Path, request: &Request) -> Result<Response, Failure> {
    let mut stream = UnixStream::connect(socket).map_err(Failure::Connect)?;
    let mut line = serde_json::to_string(request).map_err(|e| Failure::Talk(format!("cannot encode: {e}")))?;
    if line.len() > MAX_REQUEST_BYTES {
        return Err(Failure::Talk(format!(
            "the request is {} bytes, more than rvsd reads ({MAX_REQUEST_BYTES})",
            line.len()
        )));
    }
    line.push('\n');
    let talk = |e: std::io::Error| Failure::Talk(os_text(&e));
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(talk)?;
    // rvsd may have answered and closed before reading the request (too many
    // clients): its reply says why, so read it even when the write failed.
    let sent = stream.write_all(line.as_bytes()).and_then(|()| stream.flush());
    let mut reply = String::new();
    let read = BufReader::new(stream).read_line(&mut reply);
    if let (Err(e), true) = (sent, reply.trim().is_empty()) {
        return Err(talk(e));
    }
    read.map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Failure::Talk(format!("no reply within {} s", REPLY_TIMEOUT.as_secs()))
        }
        _ => talk(e),
    })?;
    if reply.trim().is_empty() {
        return Err(Failure::Talk("closed the connection without a reply".into()));
    }
    serde_json::from_str(reply.trim_end()).map_err(|e| Failure::Talk(format!("unreadable reply ({e}): {reply}")))
}

/// An I/O error as strerror text, without Rust's " (os error N)".
fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

fn fail(message: &str, code: i32) -> ExitCode {
    let mut m = message.to_owned();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    eprint!("{m}");
    exit(code)
}

/// The exit status as the C `exit(code)` gives it: the low 8 bits (-1 → 255).
fn exit(code: i32) -> ExitCode {
    ExitCode::from((code & 0xff) as u8)
}
