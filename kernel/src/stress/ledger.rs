//! The ledger: who holds each frame, recorded beside memory rather than in it.
//!
//! Every frame the stress suite holds has a [`Stamp`] in the ledger: a tag (holder CPU and
//! sequence number) and a link word (`cross` batches and `exhaust` chain their frames through
//! it). The holder checks its stamp before it frees the frame. If the allocator ever handed
//! one frame to two holders at once, the second holder's stamp overwrites the first's and the
//! first holder's check fails: a duplicate cannot go unseen, even when both holders free
//! "correctly". A frame outside the memory the allocator manages has no entry, and a holder
//! that gets one records an error too.
//!
//! # Why beside memory
//! The stamps used to be written into the frames themselves. Under TCG each vCPU has a
//! software TLB of 256 entries, and a frame that crossed CPUs was almost never in the TLB of
//! the CPU that stamped or checked it: each stamp cost a page walk in QEMU's helpers. gdb
//! samples of magazine-mode `cross` at -smp 8 put a third of the running vCPUs' samples
//! just after the stamp's store. With the stamps in this ledger (its first version, which
//! searched the ranges) the phase ran at medians of 3.1 M to 3.8 M ops/s against 2.2 M to
//! 2.7 M with stamps in the frames (three alternated boots of ten runs each). That cost is
//! the emulator's, not the allocator's, so it came out of the harness. The frames' own
//! memory is still written and read back: `exhaust` marks every frame it obtains, which is
//! every free frame ([`super::mark`]).
//!
//! # Layout
//! One [`Entry`] of two words per frame, 256 to a page, in pages the ledger takes from the
//! allocator itself (single frames: no contiguous run is needed). Frame `n`'s entry is entry
//! `n % 256` of the page for the *block* `n / 256` (1 MiB of physical memory); a table on the
//! heap maps each block between the lowest and the highest managed frame to its page, and a
//! block with no managed frame has none. So the ledger takes 1/256 of the memory it covers
//! plus 16 bytes of heap per MiB of the physical span, and finding an entry is two indexing
//! steps. That matters under TCG: with a binary search through the managed ranges instead,
//! gdb samples of `cross` at -smp 1 found a sixth of the harness's time in the search.
//! Frames of a block's unmanaged part have entries nobody uses; frames of a block without a
//! page are outside. The ledger returns its pages when it drops.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::{FRAME_SIZE, Frame, PhysRange};

use crate::memory::{FRAMES, pin};

/// What a holder records for a frame it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Who holds the frame: `(cpu << 40) | sequence` (see [`tag`]); 0 in a fresh ledger.
    pub tag: u64,
    /// Free for the holder's use (chains of frames link through it).
    pub link: u64,
}

/// The tag of the `seq`-th frame taken by `cpu`.
pub fn tag(cpu: usize, seq: u64) -> u64 {
    ((cpu as u64) << 40) | (seq & ((1 << 40) - 1))
}

/// One frame's stamp in memory. Atomic words, so that two CPUs holding the same frame (the
/// bug the ledger exists to catch) race on it without undefined behaviour.
#[repr(C)]
struct Entry {
    tag: AtomicU64,
    link: AtomicU64,
}

/// Entries in one ledger page: the frames of one block.
const ENTRIES_PER_PAGE: u64 = FRAME_SIZE / size_of::<Entry>() as u64;

/// A stamp for every frame of managed memory.
pub struct Ledger {
    /// The first block the table covers.
    first_block: u64,
    /// The ledger page of each block from `first_block` on, if it has managed frames.
    pages: Vec<Option<Frame>>,
    hhdm_offset: u64,
}

impl Ledger {
    /// A ledger for the frames of `ranges`, all unrecorded, in pages from [`FRAMES`] reached
    /// at `hhdm_offset + physical address`. `Err` if the allocator has too few frames, or the
    /// table would take more than half the heap.
    pub fn new(
        ranges: impl Iterator<Item = PhysRange>,
        hhdm_offset: u64,
    ) -> Result<Ledger, String> {
        let blocks: Vec<Range<u64>> = ranges
            .map(|range| range.frames())
            .filter(|frames| !frames.is_empty())
            .map(|frames| frames.start / ENTRIES_PER_PAGE..frames.end.div_ceil(ENTRIES_PER_PAGE))
            .collect();
        let first_block = blocks.iter().map(|b| b.start).min().unwrap_or(0);
        let end_block = blocks.iter().map(|b| b.end).max().unwrap_or(first_block);
        let table_len = (end_block - first_block) as usize;
        table_fits(table_len)?;
        let mut ledger = Ledger {
            first_block,
            pages: vec![None; table_len],
            hhdm_offset,
        };
        for block in blocks.into_iter().flatten() {
            ledger.add_page(block)?;
        }
        Ok(ledger)
    }

    /// Gives `block` a page of unrecorded entries, unless it has one.
    fn add_page(&mut self, block: u64) -> Result<(), String> {
        let slot = &mut self.pages[(block - self.first_block) as usize];
        if slot.is_some() {
            return Ok(());
        }
        let page = FRAMES
            .alloc(&pin())
            .map_err(|e| format!("stress: no frame for the ledger's page of block {block}: {e}"))?;
        *slot = Some(page);
        for entry in self.page_entries(page) {
            entry.tag.store(0, Ordering::Relaxed);
            entry.link.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Records `stamp` for `frame`; `false` if `frame` is outside managed memory.
    pub fn record(&self, frame: Frame, stamp: Stamp) -> bool {
        let Some(entry) = self.entry(frame) else {
            return false;
        };
        entry.tag.store(stamp.tag, Ordering::Relaxed);
        entry.link.store(stamp.link, Ordering::Relaxed);
        true
    }

    /// The last stamp recorded for `frame` (tag 0 if none was); `None` outside managed memory.
    pub fn read(&self, frame: Frame) -> Option<Stamp> {
        self.entry(frame).map(|entry| Stamp {
            tag: entry.tag.load(Ordering::Relaxed),
            link: entry.link.load(Ordering::Relaxed),
        })
    }

    fn entry(&self, frame: Frame) -> Option<&Entry> {
        let n = frame.number();
        let block = (n / ENTRIES_PER_PAGE).checked_sub(self.first_block)?;
        let page = (*self.pages.get(block as usize)?)?;
        Some(&self.page_entries(page)[(n % ENTRIES_PER_PAGE) as usize])
    }

    /// The entries of one of the ledger's pages.
    fn page_entries(&self, page: Frame) -> &[Entry] {
        let first = (self.hhdm_offset + page.start_address()) as *const Entry;
        // SAFETY: (1) `page` came from `FRAMES` for this ledger and is freed only when the
        // ledger drops, so nothing else uses its memory while `&self` lives; (2) the HHDM maps
        // it, 4 KiB-aligned, so `ENTRIES_PER_PAGE` entries fit and are aligned; (3) an `Entry`
        // is two `AtomicU64`s, valid for any bytes, and all access is atomic, so shared
        // references are sound even while two CPUs race on one entry.
        unsafe { core::slice::from_raw_parts(first, ENTRIES_PER_PAGE as usize) }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        for page in self.pages.drain(..).flatten() {
            if let Err(e) = FRAMES.free(&pin(), page) {
                panic!("stress: the allocator refused a ledger page back: {e}");
            }
        }
    }
}

/// `Ok` if a table of `len` blocks takes at most half the free heap.
fn table_fits(len: usize) -> Result<(), String> {
    let table_bytes = len * size_of::<Option<Frame>>();
    let heap_bytes = crate::memory::heap::free_bytes();
    if table_bytes > heap_bytes / 2 {
        return Err(format!(
            "stress: the ledger's table for {len} MiB of physical address space takes \
             {table_bytes} bytes, more than half the {heap_bytes} bytes of heap free"
        ));
    }
    Ok(())
}
