//! Stamps written into the frames themselves, through the HHDM.
//!
//! Every frame the stress suite holds carries a [`Stamp`] in its first bytes: a check word
//! derived from the frame number, a tag (holder CPU and sequence number) and a link word
//! (the `exhaust` phase chains its frames into a list through it). The holder checks the
//! stamp before it frees the frame. If the allocator ever handed one frame to two holders at
//! once, the second holder's stamp overwrites the first's and the first holder's check fails:
//! a duplicate cannot go unseen, even when both holders free "correctly".
//!
//! This is the stress suite's only `unsafe` code: two volatile accesses through the HHDM.

use mm::Frame;

/// Mixed into the check word so that a zeroed or foreign frame never passes.
const MAGIC: u64 = 0x5354_414d_5045_4421;

/// What a holder writes into a frame it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Who holds the frame: `(cpu << 40) | sequence`.
    pub tag: u64,
    /// Free for the holder's use (the `exhaust` phase links its frames through it).
    pub link: u64,
}

/// The layout in memory: three words at the start of the frame.
#[repr(C)]
struct Raw {
    check: u64,
    tag: u64,
    link: u64,
}

/// Access to frames through the higher-half direct map.
#[derive(Clone, Copy)]
pub struct Stamper {
    hhdm_offset: u64,
}

impl Stamper {
    /// A stamper for frames mapped at `hhdm_offset + physical address`.
    pub fn new(hhdm_offset: u64) -> Self {
        Stamper { hhdm_offset }
    }

    fn raw(&self, frame: Frame) -> *mut Raw {
        (self.hhdm_offset + frame.start_address()) as *mut Raw
    }

    /// Writes `stamp` into `frame`.
    ///
    /// # Safety
    /// The caller holds `frame`: the frame allocator handed it out and it was not freed
    /// since, so nothing else in the kernel uses its memory; and the HHDM maps it writable.
    pub unsafe fn write(&self, frame: Frame, stamp: Stamp) {
        let raw = Raw {
            check: MAGIC ^ frame.number(),
            tag: stamp.tag,
            link: stamp.link,
        };
        // SAFETY: (1) the caller holds the frame, so no one else accesses these bytes; (2) the
        // HHDM maps it writable and 4 KiB-aligned, so the 24 bytes are valid and aligned.
        unsafe { self.raw(frame).write_volatile(raw) }
    }

    /// Reads the stamp of `frame`; `None` when its check word is not this frame's.
    ///
    /// # Safety
    /// As for [`Stamper::write`].
    pub unsafe fn read(&self, frame: Frame) -> Option<Stamp> {
        // SAFETY: as in `write`: held by the caller, mapped, aligned.
        let raw = unsafe { self.raw(frame).read_volatile() };
        (raw.check == MAGIC ^ frame.number()).then_some(Stamp {
            tag: raw.tag,
            link: raw.link,
        })
    }
}

/// The tag of the `seq`-th frame taken by `cpu`.
pub fn tag(cpu: usize, seq: u64) -> u64 {
    ((cpu as u64) << 40) | (seq & ((1 << 40) - 1))
}
