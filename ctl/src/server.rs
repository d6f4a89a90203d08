//! The control socket: a unix stream socket, one JSON [`Request`] line in and
//! one [`Response`] line out per exchange, a thread per client. A malformed,
//! oversized or wrong-version request gets an error reply; nothing a client
//! sends can stop the server.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::control::Control;
use crate::proto::{Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION};

/// The bound socket; removes its file when dropped.
pub struct Socket {
    path: PathBuf,
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (mode 0600, or 0660 with `group`), refusing when another rvsd
/// answers on it, and serves `control` on a background thread.
pub fn serve(path: &Path, group: Option<&str>, control: Arc<Control>) -> Result<Socket, String> {
    if UnixStream::connect(path).is_ok() {
        return Err(format!("{}: another rvsd is running (its control socket answers)", path.display()));
    }
    let _ = std::fs::remove_file(path); // a stale socket from a crashed rvsd
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("{}: cannot bind: {e}", path.display()))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(g) = group {
        chgrp(path, g)?;
    }
    std::thread::Builder::new()
        .name("rvs-control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let c = control.clone();
                let _ = std::thread::Builder::new().name("rvs-client".into()).spawn(move || client(stream, &c));
            }
        })
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(Socket { path: path.to_path_buf() })
}

fn chgrp(path: &Path, group: &str) -> Result<(), String> {
    let out =
        std::process::Command::new("chgrp").arg(group).arg(path).output().map_err(|e| format!("chgrp {group}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("[control] group \"{group}\": {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn client(stream: UnixStream, control: &Control) {
    let Ok(write_half) = stream.try_clone() else { return };
    let mut out = write_half;
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_BYTES as u64 + 1));
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_REQUEST_BYTES => {
                reply(&mut out, &error(format!("request larger than {MAX_REQUEST_BYTES} bytes")));
                return;
            }
            Ok(_) => {}
        }
        let resp = match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(r) if r.version != PROTOCOL_VERSION => {
                error(format!("protocol version {} not supported (rvsd speaks {PROTOCOL_VERSION})", r.version))
            }
            Ok(r) => control.handle(r.op),
            Err(e) => error(format!("malformed request: {e}")),
        };
        if !reply(&mut out, &resp) {
            return;
        }
    }
}

fn error(message: String) -> Response {
    Response::Error { message, exit_code: 2 }
}

fn reply(out: &mut UnixStream, r: &Response) -> bool {
    match serde_json::to_string(r) {
        Ok(mut s) => {
            s.push('\n');
            out.write_all(s.as_bytes()).is_ok()
        }
        Err(_) => false,
    }
}
