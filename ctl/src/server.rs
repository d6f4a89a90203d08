//! The control socket: a unix stream socket, one JSON [`Request`] line in and
//! one [`Response`] line out per exchange, served by one event-loop thread
//! (operations themselves run on tokio's blocking pool, one at a time per
//! client). A malformed, undecodable, oversized or wrong-version request gets
//! an error reply; nothing a client sends can stop the server.
//!
//! A local client must not be able to lock the operator out or make rvsd
//! hold memory (`[control]` in docs/configuration.md):
//! - at most `max_clients` connections are served at once; when all are
//!   taken, a new client takes the slot of the client that has waited
//!   longest without completing a request (it gets an error line and is
//!   closed), and is refused with an error line only when every client is
//!   in the middle of an operation — so `rvsadm` always gets through a
//!   crowd of idle or slow connections;
//! - a client has `idle_timeout` seconds to send each whole request, and to
//!   take each reply, or is closed;
//! - a request line is at most [`MAX_REQUEST_BYTES`]; the buffer holding it
//!   is released once the request is decoded. Beyond its first
//!   [`READ_CHUNK`], a client's buffer comes out of one budget shared by all
//!   clients ([`REQUEST_BUDGET`]); a request that would overdraw it is
//!   refused, so unfinished requests hold at most that much however many
//!   clients send them.
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use crate::api::{decode_request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use crate::control::Control;

/// How much a read asks for at a time (and a buffer's first size).
pub const READ_CHUNK: usize = 64 << 10;
/// What the buffers of unfinished requests may hold together beyond their
/// first [`READ_CHUNK`]: four whole requests at once.
pub const REQUEST_BUDGET: usize = 4 * MAX_REQUEST_BYTES;
/// Exit status rvsadm reports for a connection rvsd closed or refused (as
/// for a reply it could not read).
const CLOSED_EXIT: i32 = 1;

/// The bound socket; removes its file when dropped.
pub struct Socket {
    path: PathBuf,
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How many clients, and how long each may take (`[control]`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_clients: usize,
    pub idle_timeout: Duration,
    pub max_request: usize,
}

impl Limits {
    pub fn of(c: &conf::Control) -> Limits {
        Limits {
            max_clients: c.max_clients.max(1) as usize,
            idle_timeout: Duration::from_secs(u64::from(c.idle_timeout.max(1))),
            max_request: MAX_REQUEST_BYTES,
        }
    }
}

/// Binds `path` (mode 0600, or 0660 with `group`), refusing when another rvsd
/// answers on it, and serves `control` on a background thread with the
/// `[control]` limits of its configuration.
pub fn serve(path: &Path, group: Option<&str>, control: Arc<Control>) -> Result<Socket, String> {
    let limits = Limits::of(&control.control_settings());
    serve_with(path, group, control, limits)
}

/// [`serve`] with explicit limits.
pub fn serve_with(path: &Path, group: Option<&str>, control: Arc<Control>, limits: Limits) -> Result<Socket, String> {
    if StdUnixStream::connect(path).is_ok() {
        return Err(format!("{}: another rvsd is running (its control socket answers)", path.display()));
    }
    let _ = std::fs::remove_file(path); // a stale socket from a crashed rvsd
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let listener =
        std::os::unix::net::UnixListener::bind(path).map_err(|e| format!("{}: cannot bind: {e}", path.display()))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(g) = group {
        chgrp(path, g)?;
    }
    listener.set_nonblocking(true).map_err(|e| format!("{}: {e}", path.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .thread_name("rvs-control-op")
        .build()
        .map_err(|e| format!("cannot start the control event loop: {e}"))?;
    std::thread::Builder::new()
        .name("rvs-control".into())
        .spawn(move || {
            rt.block_on(async move {
                match UnixListener::from_std(listener) {
                    Ok(l) => accept_loop(l, control, limits).await,
                    Err(e) => eprintln!("rvsd: control socket: {e}"),
                }
            })
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

/// One served connection.
struct Slot {
    /// When it began waiting for its next request; `None` while its request
    /// is being carried out or its reply written.
    waiting_since: Option<Instant>,
    /// Tells it to give its slot up.
    shed: Arc<Notify>,
}

#[derive(Default)]
struct Slots {
    next: u64,
    clients: HashMap<u64, Slot>,
}

type Shared = Arc<Mutex<Slots>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Slots> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slots {
    /// A slot for a new client: a free one, else the one of the client that
    /// has waited longest for its own request (told to go). `None` when
    /// every client is busy with an operation.
    fn admit(&mut self, max: usize) -> Option<(u64, Arc<Notify>)> {
        if self.clients.len() >= max {
            let (&victim, _) = self
                .clients
                .iter()
                .filter_map(|(id, s)| s.waiting_since.map(|t| (id, t)))
                .min_by_key(|&(id, t)| (t, *id))?;
            if let Some(s) = self.clients.remove(&victim) {
                s.shed.notify_one();
            }
        }
        self.next += 1;
        let shed = Arc::new(Notify::new());
        self.clients.insert(self.next, Slot { waiting_since: Some(Instant::now()), shed: shed.clone() });
        Some((self.next, shed))
    }

    fn set_waiting(&mut self, id: u64, waiting: bool) {
        if let Some(s) = self.clients.get_mut(&id) {
            s.waiting_since = waiting.then(Instant::now);
        }
    }
}

/// Frees a client's slot however its task ends.
struct Release {
    slots: Shared,
    id: u64,
}

impl Drop for Release {
    fn drop(&mut self) {
        lock(&self.slots).clients.remove(&self.id);
    }
}

async fn accept_loop(listener: UnixListener, control: Arc<Control>, limits: Limits) {
    let slots: Shared = Arc::default();
    let budget = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or memory for a moment: pending clients
                // wait in the listen backlog.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = lock(&slots).admit(limits.max_clients);
        match admitted {
            Some((id, shed)) => {
                let release = Release { slots: slots.clone(), id };
                let held = Held { total: budget.clone(), mine: 0 };
                tokio::spawn(client(stream, control.clone(), release, shed, held, limits));
            }
            None => {
                let r = closing(format!(
                    "too many clients: rvsd serves {} at once ([control] max_clients) and each is in the middle of \
                     an operation; try again",
                    limits.max_clients
                ));
                // Best effort: the client may not even read it.
                let _ = stream.try_write(&line_of(&r));
            }
        }
    }
}

/// What reading a request line gave.
enum Read {
    Line(Vec<u8>),
    Eof,
    TooLong,
    OverBudget,
}

/// One client's share of [`REQUEST_BUDGET`]: the capacity of its buffer
/// beyond [`READ_CHUNK`].
struct Held {
    total: Arc<AtomicUsize>,
    mine: usize,
}

impl Held {
    /// Accounts a buffer of `cap` bytes; false (nothing changed) when that
    /// would overdraw the budget.
    fn set(&mut self, cap: usize) -> bool {
        let want = cap.saturating_sub(READ_CHUNK);
        if want > self.mine {
            let more = want - self.mine;
            if self.total.fetch_add(more, Relaxed) + more > REQUEST_BUDGET {
                self.total.fetch_sub(more, Relaxed);
                return false;
            }
        } else {
            self.total.fetch_sub(self.mine - want, Relaxed);
        }
        self.mine = want;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.mine, Relaxed);
    }
}

/// Reads up to the next newline (excluded) or the end of the stream. `buf`
/// holds what was read beyond the line, for the next call.
async fn read_request(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>, held: &mut Held, max: usize) -> std::io::Result<Read> {
    let mut scanned = 0;
    loop {
        if let Some(i) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let rest = buf.split_off(scanned + i + 1);
            let mut line = std::mem::replace(buf, rest);
            line.pop();
            return Ok(Read::Line(line));
        }
        scanned = buf.len();
        if buf.len() > max {
            return Ok(Read::TooLong);
        }
        if buf.capacity() == buf.len() {
            // Doubling, but never past one byte more than a request may be.
            let want = (buf.capacity() * 2).clamp(READ_CHUNK, max + 1);
            if !held.set(want) {
                return Ok(Read::OverBudget);
            }
            buf.reserve_exact(want.saturating_sub(buf.len()).max(1));
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(if buf.is_empty() { Read::Eof } else { Read::Line(std::mem::take(buf)) });
        }
    }
}

async fn client(
    stream: UnixStream,
    control: Arc<Control>,
    slot: Release,
    shed: Arc<Notify>,
    mut held: Held,
    limits: Limits,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = Vec::new();
    loop {
        // A client with a whole request already read (pipelined) is not idle.
        let pipelined = buf.contains(&b'\n');
        lock(&slot.slots).set_waiting(slot.id, !pipelined);
        let got = tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, read_request(&mut rd, &mut buf, &mut held, limits.max_request)) => r,
            _ = shed.notified() => {
                let r = closing(format!(
                    "closed: another client needed this connection's slot ([control] max_clients = {}) and this \
                     one had sent no request",
                    limits.max_clients
                ));
                send(&mut wr, &r, limits).await;
                return;
            }
        };
        let line = match got {
            Err(_) => {
                let r = closing(format!(
                    "closed: no complete request within {} s ([control] idle_timeout)",
                    limits.idle_timeout.as_secs()
                ));
                send(&mut wr, &r, limits).await;
                return;
            }
            Ok(Err(_)) | Ok(Ok(Read::Eof)) => return,
            Ok(Ok(Read::TooLong)) => {
                send(&mut wr, &error(format!("request larger than {} bytes", limits.max_request)), limits).await;
                return;
            }
            Ok(Ok(Read::OverBudget)) => {
                let r = closing(format!(
                    "closed: rvsd already holds {} MiB of unfinished requests from its clients; try again",
                    REQUEST_BUDGET >> 20
                ));
                send(&mut wr, &r, limits).await;
                return;
            }
            Ok(Ok(Read::Line(line))) => line,
        };
        if buf.capacity() > READ_CHUNK {
            buf.shrink_to(READ_CHUNK);
        }
        held.set(buf.capacity());
        lock(&slot.slots).set_waiting(slot.id, false);
        let decoded = decode_request(&line);
        drop(line);
        let resp = match decoded {
            Err(e) => error(e.message),
            Ok(r) if r.version != PROTOCOL_VERSION => {
                error(format!("protocol version {} not supported (rvsd speaks {PROTOCOL_VERSION})", r.version))
            }
            Ok(r) => {
                let c = control.clone();
                tokio::task::spawn_blocking(move || c.handle(r.op))
                    .await
                    .unwrap_or_else(|_| error("the operation failed inside rvsd".into()))
            }
        };
        if !send(&mut wr, &resp, limits).await {
            return;
        }
    }
}

fn error(message: String) -> Response {
    Response::Error { message, exit_code: 2 }
}

/// The last line on a connection rvsd closes.
fn closing(message: String) -> Response {
    Response::Error { message, exit_code: CLOSED_EXIT }
}

fn line_of(r: &Response) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"error\":{\"message\":\"\",\"exit_code\":1}}".to_vec());
    v.push(b'\n');
    v
}

/// Writes `r`; false when the client is gone or does not take it within
/// the idle timeout.
async fn send(wr: &mut OwnedWriteHalf, r: &Response, limits: Limits) -> bool {
    let line = line_of(r);
    matches!(tokio::time::timeout(limits.idle_timeout, wr.write_all(&line)).await, Ok(Ok(())))
}
