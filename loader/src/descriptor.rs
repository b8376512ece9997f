//! The loader's task-state segment and its GDT descriptor, for the BSP's IST stack.
//!
//! A stack overflow in the loader runs into an unmapped guard page; the page fault that follows
//! cannot push its frame on the same stack, so the CPU raises a double fault, and only an
//! interrupt stack table (IST) entry can give that one a good stack (Intel SDM Vol. 3A 6.14.5).
//! The IST lives in the 64-bit TSS ([`Tss`], SDM Figure 8-11), which the CPU finds through a
//! 16-byte system descriptor in the GDT ([`tss_descriptor`], SDM Figure 8-4) loaded with `ltr`.
//! The binary fills both once on the BSP; the APs run without a TSS (their gates use no IST).

/// The 64-bit TSS. `#[repr(C, packed(4))]`: read by the CPU; the 64-bit fields sit at offsets
/// 4, 12, ... as the SDM lays them out.
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug)]
pub struct Tss {
    reserved0: u32,
    /// Stacks for privilege levels 0-2 (unused: the loader stays at ring 0).
    pub rsp: [u64; 3],
    reserved1: u64,
    /// IST1..IST7, `ist[0]` being IST1.
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    /// Offset of the I/O permission bitmap; the TSS size means "none".
    pub iomap_base: u16,
}

/// Size of the TSS in bytes (SDM Figure 8-11): 104.
pub const TSS_SIZE: usize = core::mem::size_of::<Tss>();
const _: () = assert!(TSS_SIZE == 104);

impl Tss {
    /// A TSS with IST1 at `ist1_top` (the stack's highest address, 16-byte aligned) and no I/O
    /// permission bitmap.
    pub const fn with_ist1(ist1_top: u64) -> Tss {
        Tss {
            reserved0: 0,
            rsp: [0; 3],
            reserved1: 0,
            ist: [ist1_top, 0, 0, 0, 0, 0, 0],
            reserved2: 0,
            reserved3: 0,
            iomap_base: TSS_SIZE as u16,
        }
    }
}

/// Type field of an available 64-bit TSS (SDM Table 3-2: 0b1001), with P (bit 7) set, DPL 0.
const TSS_AVAILABLE_PRESENT: u64 = 0x89;

/// The 16-byte GDT descriptor of an available 64-bit TSS at `base` (SDM Figure 8-4), as the two
/// quadwords the GDT holds: limit 15:0, base 23:0, type/P, limit 19:16, base 31:24, base 63:32.
pub const fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | TSS_AVAILABLE_PRESENT << 40
        | ((limit >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    [low, base >> 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tss_follows_the_sdm_layout() {
        let tss = Tss::with_ist1(0x1122_3344_5566_7780);
        let bytes = crate::testutil::as_bytes(&tss);
        assert_eq!(bytes.len(), TSS_SIZE);
        assert_eq!(
            &bytes[36..44],
            &0x1122_3344_5566_7780u64.to_le_bytes(),
            "IST1"
        );
        assert!(bytes[..36].iter().all(|&b| b == 0), "RSP0-2 and reserved");
        assert!(
            bytes[44..102].iter().all(|&b| b == 0),
            "IST2-7 and reserved"
        );
        assert_eq!(&bytes[102..104], &104u16.to_le_bytes(), "no I/O bitmap");
    }

    #[test]
    fn the_descriptor_splits_base_and_limit() {
        let [low, high] = tss_descriptor(0xffff_8000_1234_5678);
        assert_eq!(low & 0xffff, 103, "limit 15:0");
        assert_eq!((low >> 16) & 0xff_ffff, 0x34_5678, "base 23:0");
        assert_eq!(
            (low >> 40) & 0xff,
            0x89,
            "present, DPL 0, available 64-bit TSS"
        );
        assert_eq!((low >> 48) & 0xf, 0, "limit 19:16");
        assert_eq!(low >> 56, 0x12, "base 31:24");
        assert_eq!(high, 0xffff_8000, "base 63:32, upper dword reserved 0");
        assert_eq!(tss_descriptor(0x10_5000), [0x0000_8910_5000_0067, 0]);
    }
}
