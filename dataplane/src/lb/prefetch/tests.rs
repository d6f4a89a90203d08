//! Tests of the burst prefetch hints.
use std::net::Ipv4Addr;

use proptest::prelude::*;

use crate::conn::Conn;
use crate::lb::test_util::*;
use crate::lb::{Lb, PREFETCH_MIN_CONNS};
use crate::service::PROTO_TCP;
use crate::wire::tcp::flags::ACK;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The prefetch passes read frames unvalidated: any burst (short,
    /// garbage, or well-formed) passes through them, with the table large
    /// enough that they run.
    #[test]
    fn prefetch_burst_takes_any_frames(frames in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..80), 0..=crate::hints::BURST + 4)) {
        let mut lb = Lb::new(0, 8192, 7);
        for n in 0..PREFETCH_MIN_CONNS as u32 {
            let c = Conn::new(PROTO_TCP, Ipv4Addr::from(0xc000_0000 + n), 1000, VIP, 80, rs(1), 80, 0, None);
            lb.conns.insert(c, 0).unwrap();
        }
        prop_assert!(lb.conns.len() >= PREFETCH_MIN_CONNS);
        let mut burst: Vec<Vec<u8>> = frames;
        burst.push(frame(true, [192, 0, 2, 1], [10, 0, 0, 100], (1000, 80), ACK, true, 6, 0));
        lb.prefetch_burst(burst.iter().map(|f| f.as_slice()));
    }
}
