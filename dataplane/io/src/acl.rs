//! DPDK's packet classifier (`rte_acl`) over the IPv4 5-tuple, the yardstick
//! the firewall-mark classifier ([`dataplane::classify`]) is measured against.
//!
//! The layout is DPDK's l3fwd-acl one: fields read straight from the IPv4
//! header (protocol, source, destination) and the first four bytes after a
//! 20-byte header (ports). Rule values are in host byte order; packets are
//! given as pointers to their IPv4 header. Each rule has a priority (the
//! highest matching wins) and a non-zero `userdata`, returned for the winner
//! (0: no rule matched).
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::eal::EalError;

/// One rule: each field an exact value or a wildcard, a prefix, a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclRule {
    /// None: any protocol.
    pub proto: Option<u8>,
    /// (address, prefix length); length 0 is any.
    pub src: (u32, u8),
    pub dst: (u32, u8),
    /// Inclusive ranges; (0, 65535) is any.
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    pub priority: i32,
    pub userdata: u32,
}

const FIELDS: usize = 5;

#[repr(C)]
struct RawRule {
    data: dpdk_sys::rte_acl_rule_data,
    field: [dpdk_sys::rte_acl_field; FIELDS],
}

/// A built classifier; immutable, classifies from any thread.
pub struct Acl(NonNull<dpdk_sys::rte_acl_ctx>);

// SAFETY: a built rte_acl context is read-only during classification, which
// DPDK documents as safe from several lcores at once.
unsafe impl Send for Acl {}
// SAFETY: as above.
unsafe impl Sync for Acl {}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn field(v: u64, m: u64) -> dpdk_sys::rte_acl_field {
    let mut f: dpdk_sys::rte_acl_field = Default::default();
    f.value.u64_ = v;
    f.mask_range.u64_ = m;
    f
}

impl Acl {
    /// Builds a classifier of `rules` (EAL must be up).
    pub fn build(rules: &[AclRule]) -> Result<Acl, EalError> {
        let name = CString::new(format!("rvs_acl_{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)))
            .map_err(|_| EalError("ACL context name".into()))?;
        let param = dpdk_sys::rte_acl_param {
            name: name.as_ptr(),
            socket_id: -1,
            rule_size: std::mem::size_of::<RawRule>() as u32,
            max_rule_num: rules.len().max(1) as u32,
        };
        // SAFETY: param is fully initialised; NULL means failure.
        let ctx = NonNull::new(unsafe { dpdk_sys::rte_acl_create(&param) })
            .ok_or_else(|| EalError(format!("rte_acl_create: {}", super::last_error())))?;
        let acl = Acl(ctx);
        let raw: Vec<RawRule> = rules
            .iter()
            .map(|r| RawRule {
                data: dpdk_sys::rte_acl_rule_data { category_mask: 1, priority: r.priority, userdata: r.userdata },
                field: [
                    match r.proto {
                        Some(p) => field(u64::from(p), 0xff),
                        None => field(0, 0),
                    },
                    field(u64::from(r.src.0), u64::from(r.src.1)),
                    field(u64::from(r.dst.0), u64::from(r.dst.1)),
                    field(u64::from(r.sport.0), u64::from(r.sport.1)),
                    field(u64::from(r.dport.0), u64::from(r.dport.1)),
                ],
            })
            .collect();
        // SAFETY: raw holds rules of exactly rule_size bytes each.
        let rc = unsafe { dpdk_sys::rte_acl_add_rules(ctx.as_ptr(), raw.as_ptr().cast(), raw.len() as u32) };
        if rc != 0 {
            return Err(EalError(format!("rte_acl_add_rules: error {rc}")));
        }
        let def = |type_: u32, size: u8, field_index: u8, input_index: u8, offset: u32| dpdk_sys::rte_acl_field_def {
            type_: type_ as u8,
            size,
            field_index,
            input_index,
            offset,
        };
        // SAFETY: rte_acl_config is plain data; zero is valid for the unused defs.
        let mut cfg: dpdk_sys::rte_acl_config = unsafe { std::mem::zeroed() };
        cfg.num_categories = 1;
        cfg.num_fields = FIELDS as u32;
        cfg.defs[0] = def(dpdk_sys::RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0, 9);
        cfg.defs[1] = def(dpdk_sys::RTE_ACL_FIELD_TYPE_MASK, 4, 1, 1, 12);
        cfg.defs[2] = def(dpdk_sys::RTE_ACL_FIELD_TYPE_MASK, 4, 2, 2, 16);
        cfg.defs[3] = def(dpdk_sys::RTE_ACL_FIELD_TYPE_RANGE, 2, 3, 3, 20);
        cfg.defs[4] = def(dpdk_sys::RTE_ACL_FIELD_TYPE_RANGE, 2, 4, 3, 22);
        // SAFETY: ctx holds the rules just added; cfg describes their fields.
        let rc = unsafe { dpdk_sys::rte_acl_build(ctx.as_ptr(), &cfg) };
        if rc != 0 {
            return Err(EalError(format!("rte_acl_build: error {rc}")));
        }
        Ok(acl)
    }

    /// Classifies a burst: `ipv4[i]` points at a packet's IPv4 header (at
    /// least 24 readable bytes); `results[i]` receives the winner's userdata.
    pub fn classify(&self, ipv4: &[*const u8], results: &mut [u32]) {
        let n = ipv4.len().min(results.len());
        // SAFETY: the context is built; each pointer is readable for the
        // fields' extent (offset 24 at most), results has room for n.
        unsafe {
            dpdk_sys::rte_acl_classify(
                self.0.as_ptr(),
                ipv4.as_ptr() as *mut *const u8,
                results.as_mut_ptr(),
                n as u32,
                1,
            );
        }
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        // SAFETY: we own the context.
        unsafe { dpdk_sys::rte_acl_free(self.0.as_ptr()) }
    }
}
