//! Replay mode: how many packets each rx pcap holds, so rvsd knows when the
//! input is consumed and can exit.
use std::io::Read;
use std::path::Path;

/// Counts the records of a classic libpcap file (either byte order, µs or ns).
pub fn count_pcap_records(path: &Path) -> Result<u64, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).map_err(|e| format!("{}: {e}", path.display()))?;
    let magic = data.get(0..4).ok_or_else(|| format!("{}: not a pcap file (too short)", path.display()))?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("{}: not a classic pcap file (pcapng is not supported in replay)", path.display())),
    };
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= data.len() {
        let b = [data[at + 8], data[at + 9], data[at + 10], data[at + 11]];
        let caplen = if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) } as usize;
        at += 16 + caplen;
        if at > data.len() {
            return Err(format!("{}: truncated record {}", path.display(), n + 1));
        }
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_written_by_pcap_file() {
        let dir = std::env::temp_dir().join(format!("rvs-replay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.pcap");
        let f = std::fs::File::create(&path).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        for i in 0..5u8 {
            let data = vec![i; 60 + i as usize];
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                std::time::Duration::from_secs(i.into()),
                data.len() as u32,
                &data,
            ))
            .unwrap();
        }
        drop(w);
        assert_eq!(count_pcap_records(&path), Ok(5));
        std::fs::write(&path, b"junkjunk").unwrap();
        assert!(count_pcap_records(&path).unwrap_err().contains("not a classic pcap"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
