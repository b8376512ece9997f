//! Marks written into the frames themselves, through the HHDM: `exhaust`'s proof that every
//! frame the allocator hands out is memory of its own.
//!
//! Who holds a frame is recorded in the [`super::ledger`], which never touches the frames.
//! `exhaust` obtains every free frame at once, and its workers also write a mark into each
//! one (a check word derived from the frame number and the holder's tag) and read it back
//! before they free it. So every frame the allocator manages is shown, once per `exhaust`
//! run, to be memory that the HHDM maps writable and that keeps what its holder wrote while
//! the other CPUs write theirs: a frame of device memory, or two frame numbers that reach the
//! same memory, fail the check.
//!
//! This and the ledger's page access are the stress suite's only `unsafe` code.

use mm::Frame;

/// Mixed into the check word so that a zeroed or foreign frame never passes.
const MAGIC: u64 = 0x5354_414d_5045_4421;

/// Writes and checks marks in frames mapped at `hhdm_offset + physical address`.
#[derive(Clone, Copy)]
pub struct Marker {
    hhdm_offset: u64,
}

impl Marker {
    /// A marker for frames mapped at `hhdm_offset + physical address`.
    pub fn new(hhdm_offset: u64) -> Self {
        Marker { hhdm_offset }
    }

    fn word(&self, frame: Frame) -> *mut u64 {
        (self.hhdm_offset + frame.start_address()) as *mut u64
    }

    /// Writes the mark of `frame` held under `tag` into its first word.
    ///
    /// # Safety
    /// The caller holds `frame`: the frame allocator handed it out and it was not freed
    /// since, so nothing else in the kernel uses its memory; and the HHDM maps it writable.
    pub unsafe fn write(&self, frame: Frame, tag: u64) {
        // SAFETY: (1) the caller holds the frame, so no one else accesses these bytes; (2) the
        // HHDM maps it writable and 4 KiB-aligned, so the word is valid and aligned.
        unsafe { self.word(frame).write_volatile(check_word(frame, tag)) }
    }

    /// Whether `frame` holds the mark [`Marker::write`] wrote for `tag`.
    ///
    /// # Safety
    /// As for [`Marker::write`].
    pub unsafe fn is_marked(&self, frame: Frame, tag: u64) -> bool {
        // SAFETY: as in `write`: held by the caller, mapped, aligned.
        unsafe { self.word(frame).read_volatile() == check_word(frame, tag) }
    }
}

/// The mark of `frame` under `tag`.
fn check_word(frame: Frame, tag: u64) -> u64 {
    MAGIC ^ frame.number() ^ tag.rotate_left(32)
}
