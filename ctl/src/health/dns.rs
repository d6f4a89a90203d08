//! The DNS side of a negotiate check (ldirectord `check_dns`,
//! specs/ipvs.md §7.3): one recursive-desired A query for `request` over
//! UDP; the server is up when it answers that query (same id, a response,
//! RCODE NOERROR, at least one answer) and, if `receive` is set, one of the
//! A records, written dotted, matches it.

use std::net::Ipv4Addr;

use regex::Regex;

/// A query for the A records of `name` with transaction `id`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    q
}

/// Judges `resp` to query `id`: Ok(reason) when up, Err(reason) when down,
/// None when it is not the answer to this query (keep waiting).
pub fn judge(id: u16, resp: &[u8], receive: Option<&Regex>) -> Option<Result<String, String>> {
    if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id || resp[2] & 0x80 == 0 {
        return None;
    }
    let rcode = resp[3] & 0x0f;
    if rcode != 0 {
        let name = match rcode {
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            _ => "error",
        };
        return Some(Err(format!("DNS {name} (rcode {rcode})")));
    }
    let qd = u16::from_be_bytes([resp[4], resp[5]]);
    let an = u16::from_be_bytes([resp[6], resp[7]]);
    if an == 0 {
        return Some(Err("DNS answer has no records".into()));
    }
    let mut at = 12;
    for _ in 0..qd {
        at = match skip_name(resp, at) {
            Some(a) => a + 4,
            None => return Some(Err("malformed DNS answer".into())),
        };
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        let Some(a) = skip_name(resp, at) else { return Some(Err("malformed DNS answer".into())) };
        let Some(fixed) = resp.get(a..a + 10) else { return Some(Err("malformed DNS answer".into())) };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let Some(data) = resp.get(a + 10..a + 10 + len) else { return Some(Err("malformed DNS answer".into())) };
        if rtype == 1 && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]).to_string());
        }
        at = a + 10 + len;
    }
    let shown = if addrs.is_empty() { format!("{an} record(s)") } else { addrs.join(" ") };
    match receive {
        Some(re) if !addrs.iter().any(|a| re.is_match(a)) => {
            Some(Err(format!("DNS answer {shown} does not match receive {:?}", re.as_str())))
        }
        _ => Some(Ok(format!("DNS answer {shown}"))),
    }
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer built by hand (independent of `query`): one A record with a
    /// compressed name pointing at the question.
    fn answer(id: u16, rcode: u8, addr: [u8; 4]) -> Vec<u8> {
        let mut m = vec![(id >> 8) as u8, id as u8, 0x81, 0x80 | rcode, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend_from_slice(&addr);
        m
    }

    #[test]
    fn query_bytes() {
        assert_eq!(
            query(0x1234, "www.example.com."),
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01"
        );
    }

    #[test]
    fn answers() {
        let a = answer(7, 0, [10, 0, 2, 11]);
        assert_eq!(judge(7, &a, None), Some(Ok("DNS answer 10.0.2.11".into())));
        assert_eq!(judge(8, &a, None), None);
        let re = Regex::new(r"^10\.0\.2\.11$").unwrap();
        assert!(judge(7, &a, Some(&re)).unwrap().is_ok());
        let re = Regex::new(r"^192\.").unwrap();
        assert_eq!(
            judge(7, &a, Some(&re)),
            Some(Err("DNS answer 10.0.2.11 does not match receive \"^192\\\\.\"".into()))
        );
        let mut nx = answer(7, 3, [0; 4]);
        nx[7] = 0;
        assert_eq!(judge(7, &nx, None), Some(Err("DNS NXDOMAIN (rcode 3)".into())));
        assert_eq!(judge(7, &a[..20], None), Some(Err("malformed DNS answer".into())));
    }
}
