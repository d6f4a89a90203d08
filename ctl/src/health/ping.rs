//! ICMP echo checks (specs/ipvs.md §7.3 `ping`) without a process per
//! check: one raw ICMP socket per source address, shared by every ping of
//! the health thread. A reader task hands each echo reply to the check
//! waiting for its (address, sequence); replies of other programs carry
//! another identifier and are ignored. Raw sockets need CAP_NET_RAW (rvsd
//! runs as root); without it the caller falls back to the `ping` program.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

type Waiters = Mutex<HashMap<(Ipv4Addr, u16), oneshot::Sender<()>>>;

struct Pinger {
    /// The raw socket, driven through tokio's datagram interface (sendto
    /// and recvfrom are the same calls on a raw socket).
    sock: Arc<UdpSocket>,
    ident: u16,
    seq: AtomicU16,
    waiters: Arc<Waiters>,
}

/// Pingers by source address, created on first use on the health thread.
fn pingers() -> &'static Mutex<HashMap<Option<Ipv4Addr>, Arc<Pinger>>> {
    static P: OnceLock<Mutex<HashMap<Option<Ipv4Addr>, Arc<Pinger>>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

fn pinger(source: Option<Ipv4Addr>) -> std::io::Result<Arc<Pinger>> {
    let mut all = pingers().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = all.get(&source) {
        return Ok(p.clone());
    }
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    s.set_nonblocking(true)?;
    // Every echo reply of every check lands here: room for bursts.
    let _ = s.set_recv_buffer_size(8 << 20);
    if let Some(src) = source {
        s.bind(&SocketAddr::from((src, 0)).into())?;
    }
    let sock = Arc::new(UdpSocket::from_std(std::net::UdpSocket::from(s))?);
    let waiters: Arc<Waiters> = Arc::default();
    let ident = (std::process::id() as u16) ^ source.map_or(0, |a| u32::from(a) as u16);
    tokio::spawn(read_replies(sock.clone(), ident, waiters.clone()));
    let p = Arc::new(Pinger { sock, ident, seq: AtomicU16::new(0), waiters });
    all.insert(source, p.clone());
    Ok(p)
}

async fn read_replies(sock: Arc<UdpSocket>, ident: u16, waiters: Arc<Waiters>) {
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // Transient (ENOBUFS, ...): let the probes run, then go on.
                println!("rvsd: health: ping socket: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let SocketAddr::V4(from) = from else { continue };
        if let Some(seq) = echo_reply(&buf[..n], ident) {
            if let Some(tx) = waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&(*from.ip(), seq)) {
                let _ = tx.send(());
            }
        }
    }
}

/// The sequence number of an echo reply with identifier `ident` in `pkt`
/// (an IPv4 packet, as raw sockets deliver it).
pub(super) fn echo_reply(pkt: &[u8], ident: u16) -> Option<u16> {
    let ihl = usize::from(*pkt.first()? & 0x0f) * 4;
    let icmp = pkt.get(ihl..ihl + 8)?;
    (icmp[0] == 0 && icmp[1] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == ident)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// An echo request (type 8) with a 16-byte payload.
pub(super) fn echo_request(ident: u16, seq: u16) -> [u8; 24] {
    let mut m = [0u8; 24];
    m[0] = 8;
    m[4..6].copy_from_slice(&ident.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m[8..24].copy_from_slice(b"rvs-health-check");
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// One echo to `dst` within `limit`: Some(result), or None when no raw
/// socket can be had (the caller then runs `ping`).
pub(super) async fn echo(dst: Ipv4Addr, source: Option<Ipv4Addr>, limit: Duration) -> Option<Result<String, String>> {
    let p = pinger(source).ok()?;
    let seq = p.seq.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    p.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert((dst, seq), tx);
    let forget = || {
        p.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&(dst, seq));
    };
    if let Err(e) = p.sock.send_to(&echo_request(p.ident, seq), SocketAddrV4::new(dst, 0)).await {
        forget();
        return Some(Err(format!("ping: {e}")));
    }
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(())) => Some(Ok("echo reply".into())),
        _ => {
            forget();
            Some(Err(format!("no echo reply within {}", super::probe::secs(limit))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_and_reply_parsing() {
        let r = echo_request(0x1234, 7);
        // A correct checksum makes the whole message sum to 0xffff (RFC 792).
        assert_eq!(checksum(&r), 0);
        let mut reply = vec![0x45, 0, 0, 44, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 2, 11, 10, 0, 2, 250];
        let mut icmp = r.to_vec();
        icmp[0] = 0;
        reply.extend_from_slice(&icmp);
        assert_eq!(echo_reply(&reply, 0x1234), Some(7));
        assert_eq!(echo_reply(&reply, 0x1235), None);
        reply[20] = 8; // a request, not a reply
        assert_eq!(echo_reply(&reply, 0x1234), None);
        assert_eq!(echo_reply(&reply[..22], 0x1234), None);
    }
}
