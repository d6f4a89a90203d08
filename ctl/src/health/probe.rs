//! The probes: each one is an async function on the health thread's event
//! loop, bounded by its timeout, that returns up/down with a reason. Probes
//! are ordinary kernel sockets (bound to `source_address` when one is set),
//! so they leave through whatever path the kernel routes: a management
//! interface today, the ports' tap exception path once it exists. External
//! checks and pings are child processes, awaited without blocking the loop
//! and killed when their timeout passes.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Stdio;
use std::time::Duration;

use conf::health::{CheckService, HttpMethod};
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::process::Command;
use tokio::time::timeout;

use super::{dns, http};

/// Responses longer than this are cut (the check judges what it has).
const MAX_RESPONSE: usize = 1 << 20;

/// Everything one server's probes need, built once per configuration.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Where probes go: the real server at its port or `checkport`.
    pub target: SocketAddrV4,
    pub source: Option<Ipv4Addr>,
    pub service: CheckService,
    /// The virtual service is UDP (connect checks become pings, §7.3).
    pub udp: bool,
    pub request: String,
    pub receive: Option<Regex>,
    pub httpmethod: HttpMethod,
    /// HTTP `Host:`.
    pub host: String,
    pub checktimeout: Duration,
    pub negotiatetimeout: Duration,
    /// The external command line, with its four arguments appended.
    pub command: String,
}

/// A probe's result: Ok(reason) up, Err(reason) down.
pub type Outcome = Result<String, String>;

/// A TCP connect (§7.3 `connect`); UDP services are pinged instead.
pub async fn connect(s: &Spec) -> Outcome {
    if s.udp {
        return ping(s).await;
    }
    match timeout(s.checktimeout, tcp(s)).await {
        Ok(Ok(_)) => Ok("connected".into()),
        Ok(Err(e)) => Err(format!("connect: {e}")),
        Err(_) => Err(format!("connect: no answer within {}", secs(s.checktimeout))),
    }
}

/// The request/response exchange of the check's service (§7.3 `negotiate`),
/// the whole of it within `negotiatetimeout`.
pub async fn negotiate(s: &Spec) -> Outcome {
    let t = s.negotiatetimeout;
    let fut = async {
        match s.service {
            CheckService::None => match tcp(s).await {
                Ok(_) => Ok("connected (service none)".into()),
                Err(e) => Err(format!("connect: {e}")),
            },
            CheckService::Http => http_check(s).await,
            CheckService::Https => super::tls::https_check(s).await,
            CheckService::SimpleTcp => simpletcp(s).await,
            CheckService::Dns => dns_check(s).await,
        }
    };
    if s.udp && s.service == CheckService::None {
        return ping(s).await;
    }
    match timeout(t, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("{}: no complete answer within {}", s.service.name(), secs(t))),
    }
}

pub(super) async fn tcp(s: &Spec) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(src) = s.source {
        sock.bind(SocketAddr::from((src, 0)))?;
    }
    sock.connect(SocketAddr::V4(s.target)).await
}

/// Reads an HTTP response: to EOF, to its Content-Length, or to
/// `MAX_RESPONSE` bytes. A TLS peer that closes without close_notify ends
/// the response too (many servers do).
pub(super) async fn read_http<R: AsyncReadExt + Unpin>(r: &mut R, method: HttpMethod) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || buf.len() >= MAX_RESPONSE || http::complete(method, &buf) {
            return Ok(buf);
        }
    }
}

async fn http_check(s: &Spec) -> Outcome {
    let mut c = tcp(s).await.map_err(|e| format!("connect: {e}"))?;
    c.write_all(&http::request(s.httpmethod, &s.request, &s.host)).await.map_err(|e| format!("send: {e}"))?;
    let resp = read_http(&mut c, s.httpmethod).await.map_err(|e| format!("receive: {e}"))?;
    http::judge(s.httpmethod, &resp, s.receive.as_ref())
}

/// ldirectord's simpletcp: send `request` (unless it is the default "/"),
/// then the answer must match `receive`; with no receive, an open port that
/// takes the request is up.
async fn simpletcp(s: &Spec) -> Outcome {
    let mut c = tcp(s).await.map_err(|e| format!("connect: {e}"))?;
    if s.request != "/" && !s.request.is_empty() {
        c.write_all(s.request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    }
    let Some(re) = &s.receive else { return Ok("connected, request sent".into()) };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = c.read(&mut chunk).await.map_err(|e| format!("receive: {e}"))?;
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
            if re.is_match(&String::from_utf8_lossy(&buf)) {
                return Ok("receive matched".into());
            }
        }
        if n == 0 || buf.len() >= MAX_RESPONSE {
            return Err(format!("the answer does not match receive {:?}", re.as_str()));
        }
    }
}

async fn dns_check(s: &Spec) -> Outcome {
    let sock = UdpSocket::bind(SocketAddr::from((s.source.unwrap_or(Ipv4Addr::UNSPECIFIED), 0)))
        .await
        .map_err(|e| format!("socket: {e}"))?;
    sock.connect(SocketAddr::V4(s.target)).await.map_err(|e| format!("connect: {e}"))?;
    let id = query_id(&s.target);
    sock.send(&dns::query(id, &s.request)).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        // A closed port answers with ICMP unreachable: ECONNREFUSED here.
        let n = sock.recv(&mut buf).await.map_err(|e| format!("receive: {e}"))?;
        if let Some(r) = dns::judge(id, &buf[..n], s.receive.as_ref()) {
            return r;
        }
    }
}

/// A query id that differs between servers and over time (not a security
/// measure: the socket is connected to the server).
fn query_id(t: &SocketAddrV4) -> u16 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.subsec_nanos() as u16) ^ (u32::from(*t.ip()) as u16) ^ t.port()
}

/// ICMP echo (§7.3 `ping`): on the shared raw socket, or through the
/// system's `ping` (a child process awaited on the event loop) when rvsd
/// may not open raw sockets.
pub async fn ping(s: &Spec) -> Outcome {
    if let Some(r) = super::ping::echo(*s.target.ip(), s.source, s.checktimeout).await {
        return r;
    }
    let wait = s.checktimeout.as_secs().max(1);
    let mut cmd = Command::new("ping");
    cmd.args(["-n", "-q", "-c", "1", "-W", &wait.to_string()]);
    if let Some(src) = s.source {
        cmd.args(["-I", &src.to_string()]);
    }
    cmd.arg(s.target.ip().to_string());
    match run(cmd, s.checktimeout + Duration::from_millis(500)).await {
        Ok(0) => Ok("echo reply".into()),
        Ok(code) => Err(format!("no echo reply (ping exited {code})")),
        Err(e) => Err(format!("ping: {e}")),
    }
}

/// `checkcommand <vip|fwm> <vport> <rip> <rport>` through `/bin/sh -c`, as
/// ldirectord runs it (§7.3 `external`): exit 0 is up.
pub async fn external(s: &Spec) -> Outcome {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("exec {}", s.command));
    match run(cmd, s.checktimeout).await {
        Ok(0) => Ok("exit 0".into()),
        Ok(code) => Err(format!("exit {code}")),
        Err(e) => Err(e),
    }
}

/// Runs `cmd` with no input or output in a process group of its own; its
/// exit code (-1 when killed by a signal). Past `limit` the whole group is
/// killed (a script's own children too) and the child reaped by tokio.
pub(super) async fn run(mut cmd: Command, limit: Duration) -> Result<i32, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    match timeout(limit, child.wait()).await {
        Ok(Ok(st)) => Ok(st.code().unwrap_or(-1)),
        Ok(Err(e)) => Err(format!("wait: {e}")),
        Err(_) => {
            if let Some(pid) = child.id() {
                // kill(2) on the group without unsafe code: kill(1), awaited.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
            }
            let _ = child.kill().await;
            Err(format!("timed out after {}, killed", secs(limit)))
        }
    }
}

pub(super) fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
