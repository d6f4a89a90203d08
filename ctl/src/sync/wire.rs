//! The LVS connection-sync wire formats, byte for byte (specs/ipvs.md §5.2 v1,
//! §5.3 v0), so rvs and Linux IPVS can be master and backup of each other.
//!
//! Invariants:
//! - The encoder never builds a message larger than its `maxlen` or with more
//!   than 255 records (nr_conns is 8 bits, §5.2).
//! - The decoder checks the whole datagram before returning any record: a
//!   malformed, truncated or foreign-syncid message yields no record at all
//!   (stricter than the kernel, which applies the records before the first
//!   bad one). A well-formed record that rvs cannot use (IPv6, SCTP, an
//!   invalid state, an unknown mandatory option) is skipped and counted; the
//!   rest of the message is used, as the kernel does.
//! - Decoding never panics on any input (every read is bounds-checked).
use std::net::Ipv4Addr;

use dataplane::sync::SyncRecord;

/// v1 header length (§5.2).
pub const V1_HEADER: usize = 8;
/// v1 IPv4 record length without options (§5.2).
pub const V1_RECORD_V4: usize = 36;
/// v1 IPv6 record length without options (§5.2).
pub const V1_RECORD_V6: usize = 72;
/// v0 header and record lengths (§5.3).
pub const V0_HEADER: usize = 4;
pub const V0_RECORD: usize = 24;
/// SEQ_DATA option payload: in_seq and out_seq, 3 × be32 each.
pub const SEQ_OPTION: usize = 24;
/// `IP_VS_CONN_F_SEQ_MASK`: the record has (or the v0 record is followed by) SEQ data.
pub const SEQ_MASK: u32 = 0x0600;
const TEMPLATE: u32 = 0x1000;
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
const OPT_F_PARAM: u8 = 0x40;
/// Template states beyond ASSURED are invalid (`IP_VS_CTPL_S_LAST`).
const TPL_STATES: u16 = 2;
const TCP_STATES: u16 = 11;
const UDP_STATES: u16 = 1;
/// Most records in one datagram (nr_conns is a u8).
pub const MAX_RECORDS: usize = 255;

/// Message format (`sync_version`, §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Version {
    V0,
    V1,
}

/// Why a whole datagram was dropped. Nothing of it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgDrop {
    /// Shorter than a v0 header (4 bytes).
    TooShort,
    /// The header's size is not the datagram's length.
    BadSize,
    /// Another syncid while ours is not 0 (§5.1).
    ForeignSyncid,
    /// A record, its options or its padding run past the end.
    Truncated,
    /// A v1 record whose ver_size top bits are not 0.
    RecordVersion,
    /// A v1 record type other than 0 (IPv4) or 1 (IPv6), or shorter than its base.
    RecordType,
    /// An option with length 0, or a SEQ_DATA option that is not 24 bytes.
    BadOption,
}

impl MsgDrop {
    pub const ALL: [MsgDrop; 7] = [
        MsgDrop::TooShort,
        MsgDrop::BadSize,
        MsgDrop::ForeignSyncid,
        MsgDrop::Truncated,
        MsgDrop::RecordVersion,
        MsgDrop::RecordType,
        MsgDrop::BadOption,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MsgDrop::TooShort => "too_short",
            MsgDrop::BadSize => "bad_size",
            MsgDrop::ForeignSyncid => "foreign_syncid",
            MsgDrop::Truncated => "truncated",
            MsgDrop::RecordVersion => "record_version",
            MsgDrop::RecordType => "record_type",
            MsgDrop::BadOption => "bad_option",
        }
    }
}

/// Why one record of an otherwise good message was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordSkip {
    /// rvs balances IPv4 only.
    Ipv6,
    /// Not TCP or UDP (SCTP...).
    Protocol,
    /// A state number beyond the protocol's states.
    State,
    /// An option type without the PARAM bit that rvs does not know.
    MandatoryOption,
}

impl RecordSkip {
    pub const ALL: [RecordSkip; 4] =
        [RecordSkip::Ipv6, RecordSkip::Protocol, RecordSkip::State, RecordSkip::MandatoryOption];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordSkip::Ipv6 => "record_ipv6",
            RecordSkip::Protocol => "record_protocol",
            RecordSkip::State => "record_state",
            RecordSkip::MandatoryOption => "record_mandatory_option",
        }
    }
}

/// A decoded datagram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub syncid: u8,
    pub v0: bool,
    pub records: Vec<SyncRecord>,
    pub skipped: Vec<RecordSkip>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(at..at + 2)?.first_chunk::<2>()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*b.get(at..at + 4)?.first_chunk::<4>()?))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    be32(b, at).map(Ipv4Addr::from)
}

/// The kernel's per-record checks (`ip_vs_proc_sync_conn`): protocol and state.
fn check_record(proto: u8, flags: u32, state: u16) -> Option<RecordSkip> {
    if flags & TEMPLATE != 0 {
        // Fwmark templates have protocol 0; an invalid template state is
        // only logged by the kernel; rvs clamps it when installing.
        let _ = TPL_STATES;
        return None;
    }
    let states = match proto {
        6 => TCP_STATES,
        17 => UDP_STATES,
        _ => return Some(RecordSkip::Protocol),
    };
    (state >= states).then_some(RecordSkip::State)
}

/// Decodes one datagram for a backup with syncid `ours` (0 accepts every
/// syncid, §5.1). v1 is recognised by `version == 1`, `reserved == 0` and
/// `spare == 0`; anything else is read as v0 (§5.2).
pub fn decode(buf: &[u8], ours: u8) -> Result<Decoded, MsgDrop> {
    if buf.len() < V0_HEADER {
        return Err(MsgDrop::TooShort);
    }
    // Both headers keep syncid at 1 and size at 2..4.
    let size = be16(buf, 2).ok_or(MsgDrop::TooShort)?;
    if usize::from(size) != buf.len() {
        return Err(MsgDrop::BadSize);
    }
    let syncid = buf[1];
    if ours != 0 && syncid != ours {
        return Err(MsgDrop::ForeignSyncid);
    }
    let is_v1 = buf.len() >= V1_HEADER && buf[0] == 0 && buf[5] == 1 && be16(buf, 6) == Some(0);
    if is_v1 {
        decode_v1(buf, syncid)
    } else {
        decode_v0(buf, syncid)
    }
}

fn decode_v1(buf: &[u8], syncid: u8) -> Result<Decoded, MsgDrop> {
    let mut d = Decoded { syncid, ..Decoded::default() };
    let n = usize::from(buf[4]);
    let mut p = V1_HEADER;
    for _ in 0..n {
        if p + V1_RECORD_V4 > buf.len() {
            return Err(MsgDrop::Truncated);
        }
        let r = &buf[p..];
        let ver_size = be16(r, 2).ok_or(MsgDrop::Truncated)?;
        let size = usize::from(ver_size & 0x0fff);
        if p + size > buf.len() {
            return Err(MsgDrop::Truncated);
        }
        if ver_size >> 12 != 0 {
            return Err(MsgDrop::RecordVersion);
        }
        let ty = r[0];
        let base = match ty {
            0 => V1_RECORD_V4,
            1 => V1_RECORD_V6,
            _ => return Err(MsgDrop::RecordType),
        };
        if size < base {
            return Err(MsgDrop::RecordType);
        }
        let rec = &r[..size];
        let mut skip = None;
        // Options: type, len, data (§5.2).
        let mut o = base;
        while o < size {
            if o + 2 > size {
                return Err(MsgDrop::Truncated);
            }
            let (otype, olen) = (rec[o], usize::from(rec[o + 1]));
            o += 2;
            if olen == 0 || o + olen > size {
                return Err(MsgDrop::BadOption);
            }
            match otype & !OPT_F_PARAM {
                OPT_SEQ_DATA if olen != SEQ_OPTION => return Err(MsgDrop::BadOption),
                OPT_SEQ_DATA | OPT_PE_DATA | OPT_PE_NAME => {}
                _ if otype & OPT_F_PARAM == 0 => skip = skip.or(Some(RecordSkip::MandatoryOption)),
                _ => {}
            }
            o += olen;
        }
        let (proto, flags, state) = (rec[1], be32(rec, 4).unwrap_or(0), be16(rec, 8).unwrap_or(0));
        if ty == 1 {
            skip = skip.or(Some(RecordSkip::Ipv6));
        }
        skip = skip.or_else(|| check_record(proto, flags, state));
        match skip {
            Some(s) => d.skipped.push(s),
            None => d.records.push(SyncRecord {
                proto,
                state: state as u8,
                flags: flags as u16,
                cport: be16(rec, 10).unwrap_or(0),
                vport: be16(rec, 12).unwrap_or(0),
                dport: be16(rec, 14).unwrap_or(0),
                fwmark: be32(rec, 16).unwrap_or(0),
                timeout: be32(rec, 20).unwrap_or(0),
                caddr: addr(rec, 24).unwrap_or(Ipv4Addr::UNSPECIFIED),
                vaddr: addr(rec, 28).unwrap_or(Ipv4Addr::UNSPECIFIED),
                daddr: addr(rec, 32).unwrap_or(Ipv4Addr::UNSPECIFIED),
            }),
        }
        // The next record starts on a 4-byte boundary.
        p += (size + 3) & !3;
    }
    if p > buf.len() {
        return Err(MsgDrop::Truncated);
    }
    Ok(d)
}

fn decode_v0(buf: &[u8], syncid: u8) -> Result<Decoded, MsgDrop> {
    let mut d = Decoded { syncid, v0: true, ..Decoded::default() };
    let n = usize::from(buf[0]);
    let mut p = V0_HEADER;
    for _ in 0..n {
        let r = buf.get(p..p + V0_RECORD).ok_or(MsgDrop::Truncated)?;
        let flags = be16(r, 20).unwrap_or(0);
        p += V0_RECORD;
        if u32::from(flags) & SEQ_MASK != 0 {
            p += SEQ_OPTION;
            if p > buf.len() {
                return Err(MsgDrop::Truncated);
            }
        }
        let (proto, state) = (r[1], be16(r, 22).unwrap_or(0));
        if let Some(s) = check_record(proto, u32::from(flags), state) {
            d.skipped.push(s);
            continue;
        }
        d.records.push(SyncRecord {
            proto,
            state: state as u8,
            flags,
            cport: be16(r, 2).unwrap_or(0),
            vport: be16(r, 4).unwrap_or(0),
            dport: be16(r, 6).unwrap_or(0),
            caddr: addr(r, 8).unwrap_or(Ipv4Addr::UNSPECIFIED),
            vaddr: addr(r, 12).unwrap_or(Ipv4Addr::UNSPECIFIED),
            daddr: addr(r, 16).unwrap_or(Ipv4Addr::UNSPECIFIED),
            // v0 has no timeout: the backup uses its own table (§5.3).
            timeout: 0,
            fwmark: 0,
        });
    }
    Ok(d)
}

/// Builds sync datagrams of one format, at most `maxlen` bytes each.
pub struct Encoder {
    version: Version,
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    n: usize,
}

impl Encoder {
    /// `maxlen` is the UDP payload limit (`--sync-maxlen`, §5.1); it is raised
    /// to one record plus header if smaller, so every record can be sent.
    pub fn new(version: Version, syncid: u8, maxlen: usize) -> Encoder {
        let min = match version {
            Version::V1 => V1_HEADER + V1_RECORD_V4,
            Version::V0 => V0_HEADER + V0_RECORD,
        };
        let maxlen = maxlen.clamp(min, usize::from(u16::MAX));
        Encoder { version, syncid, maxlen, buf: Vec::with_capacity(maxlen), n: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn len(&self) -> usize {
        self.n
    }

    fn record_len(&self) -> usize {
        match self.version {
            Version::V1 => V1_RECORD_V4,
            Version::V0 => V0_RECORD,
        }
    }

    /// Whether `push` would first have to hand back a full message.
    pub fn is_full(&self) -> bool {
        self.n > 0 && (self.n >= MAX_RECORDS || self.buf.len() + self.record_len() > self.maxlen)
    }

    /// Adds a record; returns the finished datagram first when the record
    /// does not fit in the current one.
    pub fn push(&mut self, r: &SyncRecord) -> Option<Vec<u8>> {
        let done = if self.is_full() { self.finish() } else { None };
        if self.n == 0 {
            self.buf.clear();
            match self.version {
                // reserved, syncid, size, nr_conns, version, spare (§5.2).
                Version::V1 => self.buf.extend_from_slice(&[0, self.syncid, 0, 0, 0, 1, 0, 0]),
                // nr_conns, syncid, size (§5.3).
                Version::V0 => self.buf.extend_from_slice(&[0, self.syncid, 0, 0]),
            }
        }
        let b = &mut self.buf;
        match self.version {
            Version::V1 => {
                b.push(0); // type: IPv4
                b.push(r.proto);
                b.extend_from_slice(&(V1_RECORD_V4 as u16).to_be_bytes()); // version 0, size 36
                                                                           // Never HASHED; never SEQ bits, as rvs has no SEQ data to send.
                b.extend_from_slice(&u32::from(r.flags & !0x40 & !(SEQ_MASK as u16)).to_be_bytes());
                b.extend_from_slice(&u16::from(r.state).to_be_bytes());
                b.extend_from_slice(&r.cport.to_be_bytes());
                b.extend_from_slice(&r.vport.to_be_bytes());
                b.extend_from_slice(&r.dport.to_be_bytes());
                b.extend_from_slice(&r.fwmark.to_be_bytes());
                b.extend_from_slice(&r.timeout.to_be_bytes());
                b.extend_from_slice(&r.caddr.octets());
                b.extend_from_slice(&r.vaddr.octets());
                b.extend_from_slice(&r.daddr.octets());
            }
            Version::V0 => {
                b.push(0);
                b.push(r.proto);
                b.extend_from_slice(&r.cport.to_be_bytes());
                b.extend_from_slice(&r.vport.to_be_bytes());
                b.extend_from_slice(&r.dport.to_be_bytes());
                b.extend_from_slice(&r.caddr.octets());
                b.extend_from_slice(&r.vaddr.octets());
                b.extend_from_slice(&r.daddr.octets());
                // rvs never adjusts sequence numbers: no SEQ data follows.
                b.extend_from_slice(&(r.flags & !0x40 & !(SEQ_MASK as u16)).to_be_bytes());
                b.extend_from_slice(&u16::from(r.state).to_be_bytes());
            }
        }
        self.n += 1;
        done
    }

    /// The datagram built so far (None when empty); the encoder starts afresh.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.n == 0 {
            return None;
        }
        let size = (self.buf.len() as u16).to_be_bytes();
        self.buf[2..4].copy_from_slice(&size);
        match self.version {
            Version::V1 => self.buf[4] = self.n as u8,
            Version::V0 => self.buf[0] = self.n as u8,
        }
        self.n = 0;
        Some(std::mem::replace(&mut self.buf, Vec::with_capacity(self.maxlen)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TCP 203.0.113.5:51234 → 10.0.0.1:80 via 192.168.10.1:8080, ESTABLISHED,
    /// Masq, active, timeout 900.
    fn tcp_rec() -> SyncRecord {
        SyncRecord {
            proto: 6,
            state: 1,
            flags: 0x0000,
            caddr: Ipv4Addr::new(203, 0, 113, 5),
            vaddr: Ipv4Addr::new(10, 0, 0, 1),
            daddr: Ipv4Addr::new(192, 168, 10, 1),
            cport: 51234,
            vport: 80,
            dport: 8080,
            timeout: 900,
            fwmark: 0,
        }
    }

    /// The same connection, written out by hand from the §5.2 tables.
    const V1_ONE: [u8; 44] = [
        // header: reserved, syncid 7, size 44, nr_conns 1, version 1, spare
        0x00, 0x07, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x00, //
        // type 0, protocol 6, ver_size 0|36
        0x00, 0x06, 0x00, 0x24, //
        // flags
        0x00, 0x00, 0x00, 0x00, //
        // state 1, cport 51234 (0xc822)
        0x00, 0x01, 0xc8, 0x22, //
        // vport 80, dport 8080 (0x1f90)
        0x00, 0x50, 0x1f, 0x90, //
        // fwmark 0
        0x00, 0x00, 0x00, 0x00, //
        // timeout 900 (0x384)
        0x00, 0x00, 0x03, 0x84, //
        203, 0, 113, 5, // caddr
        10, 0, 0, 1, // vaddr
        192, 168, 10, 1, // daddr
    ];

    /// The same connection in v0 (§5.3), by hand.
    const V0_ONE: [u8; 28] = [
        // nr_conns 1, syncid 7, size 28
        0x01, 0x07, 0x00, 0x1c, //
        // reserved, protocol 6, cport, vport, dport
        0x00, 0x06, 0xc8, 0x22, 0x00, 0x50, 0x1f, 0x90, //
        203, 0, 113, 5, 10, 0, 0, 1, 192, 168, 10, 1, //
        // flags 0, state 1
        0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn v1_encodes_the_spec_layout() {
        let mut e = Encoder::new(Version::V1, 7, 1472);
        assert!(e.push(&tcp_rec()).is_none());
        assert_eq!(e.finish().unwrap(), V1_ONE.to_vec());
        assert!(e.finish().is_none());
    }

    #[test]
    fn v0_encodes_the_spec_layout() {
        let mut e = Encoder::new(Version::V0, 7, 1472);
        e.push(&tcp_rec());
        assert_eq!(e.finish().unwrap(), V0_ONE.to_vec());
    }

    #[test]
    fn hashed_and_seq_flags_are_never_sent() {
        let mut r = tcp_rec();
        r.flags = 0x0040 | 0x0183 | 0x0600;
        let mut e = Encoder::new(Version::V1, 0, 1472);
        e.push(&r);
        let m = e.finish().unwrap();
        assert_eq!(&m[12..16], &[0, 0, 0x01, 0x83]);
        assert_eq!(m.len(), 44, "no SEQ option");
        let mut e = Encoder::new(Version::V0, 0, 1472);
        e.push(&r);
        let m = e.finish().unwrap();
        assert_eq!(m.len(), 28, "no SEQ data may follow when the SEQ bits are clear");
        assert_eq!(&m[24..26], &[0x01, 0x83]);
    }

    #[test]
    fn decodes_hand_written_v1_and_v0() {
        let d = decode(&V1_ONE, 0).unwrap();
        assert_eq!((d.syncid, d.v0, d.records.clone()), (7, false, vec![tcp_rec()]));
        let d = decode(&V0_ONE, 7).unwrap();
        let mut want = tcp_rec();
        want.timeout = 0;
        assert_eq!((d.syncid, d.v0, d.records), (7, true, vec![want]));
    }

    #[test]
    fn fwmark_template_v1() {
        // Persistence template of fwmark 10: protocol 0, vaddr 0.0.0.10, cport 0,
        // TEMPLATE|Route, state ASSURED, timeout 360.
        let r = SyncRecord {
            proto: 0,
            state: 1,
            flags: 0x1003,
            caddr: Ipv4Addr::new(203, 0, 113, 0),
            vaddr: Ipv4Addr::new(0, 0, 0, 10),
            daddr: Ipv4Addr::new(192, 168, 10, 2),
            cport: 0,
            vport: 0,
            dport: 0,
            timeout: 360,
            fwmark: 10,
        };
        let mut e = Encoder::new(Version::V1, 0, 1472);
        e.push(&r);
        let m = e.finish().unwrap();
        let want: [u8; 44] = [
            0, 0, 0, 44, 1, 1, 0, 0, //
            0, 0, 0, 36, //
            0, 0, 0x10, 0x03, //
            0, 1, 0, 0, //
            0, 0, 0, 0, //
            0, 0, 0, 10, //
            0, 0, 0x01, 0x68, //
            203, 0, 113, 0, 0, 0, 0, 10, 192, 168, 10, 2,
        ];
        assert_eq!(m, want.to_vec());
        assert_eq!(decode(&m, 0).unwrap().records, vec![r]);
    }

    #[test]
    fn batches_respect_maxlen_and_255_records() {
        // 1472 bytes: (1472 - 8) / 36 = 40 records per message.
        let mut e = Encoder::new(Version::V1, 0, 1472);
        let mut msgs = Vec::new();
        for i in 0..100u16 {
            let mut r = tcp_rec();
            r.cport = i;
            msgs.extend(e.push(&r));
        }
        msgs.extend(e.finish());
        assert_eq!(msgs.iter().map(|m| m[4]).collect::<Vec<_>>(), vec![40, 40, 20]);
        assert!(msgs.iter().all(|m| m.len() <= 1472));
        assert_eq!(msgs[0].len(), 8 + 40 * 36);
        let all: Vec<u16> = msgs.iter().flat_map(|m| decode(m, 0).unwrap().records).map(|r| r.cport).collect();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        // A huge maxlen still stops at 255 records.
        let mut e = Encoder::new(Version::V1, 0, 65507);
        let mut counts = Vec::new();
        for _ in 0..300 {
            if let Some(m) = e.push(&tcp_rec()) {
                counts.push(m[4]);
            }
        }
        counts.extend(e.finish().map(|m| m[4]));
        assert_eq!(counts, vec![255, 45]);
    }

    #[test]
    fn malformed_messages_are_dropped_whole() {
        assert_eq!(decode(&[0, 0, 0], 0), Err(MsgDrop::TooShort));
        // Size field disagrees with the datagram.
        let mut m = V1_ONE;
        m[3] = 45;
        assert_eq!(decode(&m, 0), Err(MsgDrop::BadSize));
        // Truncated: claims 2 records.
        let mut m = V1_ONE;
        m[4] = 2;
        assert_eq!(decode(&m, 0), Err(MsgDrop::Truncated));
        // Record size runs past the end.
        let mut m = V1_ONE;
        m[11] = 40;
        assert_eq!(decode(&m, 0), Err(MsgDrop::Truncated));
        // Record version 1.
        let mut m = V1_ONE;
        m[10] = 0x10;
        assert_eq!(decode(&m, 0), Err(MsgDrop::RecordVersion));
        // Unknown record type.
        let mut m = V1_ONE;
        m[8] = 2;
        assert_eq!(decode(&m, 0), Err(MsgDrop::RecordType));
        // Record shorter than its base.
        let mut m = V1_ONE;
        m[11] = 32;
        assert_eq!(decode(&m, 0), Err(MsgDrop::RecordType));
        // Foreign syncid: 7 on the wire, 8 here; 0 accepts all.
        assert_eq!(decode(&V1_ONE, 8), Err(MsgDrop::ForeignSyncid));
        assert!(decode(&V1_ONE, 7).is_ok());
        // v0 truncated record.
        let mut m = V0_ONE[..20].to_vec();
        m[3] = 20;
        assert_eq!(decode(&m, 0), Err(MsgDrop::Truncated));
        // v0 with SEQ flags but no SEQ data.
        let mut m = V0_ONE;
        m[25] = 0x06;
        m[24] = 0x06;
        assert_eq!(decode(&m, 0), Err(MsgDrop::Truncated));
    }

    /// v1 message with one record carrying the options of §5.2.
    fn with_options(opts: &[u8]) -> Vec<u8> {
        let mut m = V1_ONE.to_vec();
        let size = 36 + opts.len();
        m[10..12].copy_from_slice(&(size as u16).to_be_bytes());
        m.extend_from_slice(opts);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        let total = m.len() as u16;
        m[2..4].copy_from_slice(&total.to_be_bytes());
        m
    }

    #[test]
    fn options_are_parsed_and_checked() {
        let mut seq = vec![1, 24];
        seq.extend_from_slice(&[0xab; 24]);
        assert_eq!(decode(&with_options(&seq), 0).unwrap().records, vec![tcp_rec()]);
        // PE name "sip" (len 3): padded to 4 bytes after the record.
        let m = with_options(&[3, 3, b's', b'i', b'p']);
        assert_eq!(m.len(), 8 + 44);
        assert_eq!(decode(&m, 0).unwrap().records.len(), 1);
        // Unknown optional (PARAM bit) type: kept.
        assert_eq!(decode(&with_options(&[0x45, 2, 0, 0]), 0).unwrap().records.len(), 1);
        // Unknown mandatory type: the record is skipped, the message is fine.
        let d = decode(&with_options(&[5, 2, 0, 0]), 0).unwrap();
        assert_eq!((d.records.len(), d.skipped), (0, vec![RecordSkip::MandatoryOption]));
        // Zero-length option, short SEQ option, option past the record.
        assert_eq!(decode(&with_options(&[2, 0, 0, 0]), 0), Err(MsgDrop::BadOption));
        assert_eq!(decode(&with_options(&[1, 2, 0, 0]), 0), Err(MsgDrop::BadOption));
        assert_eq!(decode(&with_options(&[2, 9, 0, 0]), 0), Err(MsgDrop::BadOption));
        assert_eq!(decode(&with_options(&[2]), 0), Err(MsgDrop::Truncated));
    }

    #[test]
    fn unusable_records_are_skipped_and_counted() {
        // Two records: SCTP (132) and TCP state 11 (beyond SYNACK).
        let mut m = V1_ONE.to_vec();
        m.extend_from_slice(&V1_ONE[8..]);
        m[4] = 2;
        m[2..4].copy_from_slice(&80u16.to_be_bytes());
        m[9] = 132;
        m[36 + 8 + 9] = 11;
        let d = decode(&m, 0).unwrap();
        assert_eq!(d.records, vec![]);
        assert_eq!(d.skipped, vec![RecordSkip::Protocol, RecordSkip::State]);
        // An IPv6 record (72 bytes) is well-formed but skipped.
        let mut m = vec![0, 0, 0, 80, 1, 1, 0, 0, 1, 6, 0, 72];
        m.resize(80, 0);
        let d = decode(&m, 0).unwrap();
        assert_eq!(d.skipped, vec![RecordSkip::Ipv6]);
    }

    #[test]
    fn v1_header_with_nonzero_spare_is_read_as_v0() {
        // §5.2: anything not exactly v1 is parsed as v0; here as a v0 message
        // with nr_conns 0 (reserved byte) and no records.
        let mut m = V1_ONE;
        m[7] = 1;
        let d = decode(&m, 0).unwrap();
        assert!(d.v0);
        assert!(d.records.is_empty());
    }

    #[test]
    fn decoder_never_panics_on_noise() {
        let mut x = 0x1234_5678u32;
        for len in 0..300usize {
            for _ in 0..20 {
                let mut m: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                if len >= 4 {
                    m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    if len >= 8 && x.is_multiple_of(2) {
                        m[0] = 0;
                        m[5] = 1;
                        m[6] = 0;
                        m[7] = 0;
                    }
                }
                let _ = decode(&m, 0);
            }
        }
    }
}
