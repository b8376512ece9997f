//! One CPU's side of a phase: allocation and free wrapped with stamping, checking and
//! counting, so the phase bodies in [`super::phases`] read as the workload alone.
//!
//! Every operation pins the CPU (interrupts off) only for the allocator call itself, as any
//! kernel caller would; interrupts, and so the BSP's live report, get in between operations.
//! A worker never stops early on an error: it records the first one, counts the rest and
//! goes on, so the CPUs that wait for it on a barrier are never left hanging.

use alloc::format;
use alloc::string::String;

use mm::Frame;

use super::live::Live;
use super::stamp::{Stamp, Stamper, tag};
use crate::memory::{FRAMES, pin};

/// A frame (or contiguous run) a worker holds, with the tag it stamped.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// The first frame.
    pub frame: Frame,
    /// Frames in the run (1 for a single frame).
    pub count: usize,
    /// The tag stamped into every frame of the run.
    pub tag: u64,
}

/// Per-CPU state of a running phase.
pub struct Worker<'a> {
    /// This CPU's index.
    pub cpu: usize,
    /// Allocator operations done (allocs, frees, contiguous allocs and frees).
    pub ops: u64,
    /// Errors seen; the first is kept in `first_error`.
    pub errors: u64,
    /// The first error, for the verdict.
    pub first_error: Option<String>,
    stamper: Stamper,
    seq: u64,
    live: Option<&'a Live>,
}

impl<'a> Worker<'a> {
    /// A worker for `cpu`; `live` is `Some` on the CPU that prints live counters.
    pub fn new(cpu: usize, stamper: Stamper, live: Option<&'a Live>) -> Self {
        Worker {
            cpu,
            ops: 0,
            errors: 0,
            first_error: None,
            stamper,
            seq: 0,
            live,
        }
    }

    /// Records an error (the first one verbatim).
    pub fn fail(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    /// Allocates and stamps one frame; `None` (error recorded) when the allocator refuses.
    pub fn alloc(&mut self) -> Option<Held> {
        let result = FRAMES.alloc(&pin());
        self.took(result.map(|frame| (frame, 1)), true)
    }

    /// Allocates one frame; `None` without recording an error when memory is exhausted.
    pub fn alloc_until_empty(&mut self) -> Option<Held> {
        let result = FRAMES.alloc(&pin());
        self.took(result.map(|frame| (frame, 1)), false)
    }

    /// Allocates and stamps `count` contiguous frames aligned to `1 << align_log2` frames.
    pub fn alloc_contiguous(&mut self, count: usize, align_log2: u32) -> Option<Held> {
        let result = FRAMES.alloc_contiguous(&pin(), count, align_log2);
        if let Ok(first) = result
            && first.number() % (1 << align_log2) != 0
        {
            self.fail(format!(
                "contiguous run at {first:?} misses its 2^{align_log2} alignment"
            ));
        }
        self.took(result.map(|frame| (frame, count)), true)
    }

    fn took<E: core::fmt::Display>(
        &mut self,
        result: Result<(Frame, usize), E>,
        exhaustion_is_error: bool,
    ) -> Option<Held> {
        self.tick();
        match result {
            Ok((frame, count)) => {
                self.ops += 1;
                self.seq += 1;
                let held = Held {
                    frame,
                    count,
                    tag: tag(self.cpu, self.seq),
                };
                self.stamp(&held, 0);
                Some(held)
            }
            Err(e) => {
                if exhaustion_is_error {
                    self.fail(format!("cpu {}: allocation failed: {e}", self.cpu));
                }
                None
            }
        }
    }

    /// Stamps every frame of `held` with its tag and `link`.
    pub fn stamp(&self, held: &Held, link: u64) {
        for n in 0..held.count as u64 {
            let frame = Frame::from_number(held.frame.number() + n);
            // SAFETY: `held` came from the allocator to this worker and is not freed yet.
            unsafe {
                self.stamper.write(
                    frame,
                    Stamp {
                        tag: held.tag,
                        link,
                    },
                )
            };
        }
    }

    /// Checks the stamps of `held`; returns the first frame's link word.
    pub fn check(&mut self, held: &Held) -> u64 {
        let mut first_link = 0;
        for n in 0..held.count as u64 {
            let frame = Frame::from_number(held.frame.number() + n);
            // SAFETY: `held` came from the allocator to its holder and is not freed yet.
            match unsafe { self.stamper.read(frame) } {
                Some(s) if s.tag == held.tag && n == 0 => first_link = s.link,
                Some(s) if s.tag == held.tag => {}
                found => self.fail(format!(
                    "cpu {}: frame {:#x} lost its stamp (tag {:#x}, found {found:?}): \
                     handed out twice?",
                    self.cpu,
                    frame.number(),
                    held.tag
                )),
            }
        }
        first_link
    }

    /// Checks and frees `held` (single frame or run), whoever allocated it; returns the link
    /// word read from its first frame before the free.
    pub fn free(&mut self, held: Held) -> u64 {
        let link = self.check(&held);
        self.tick();
        let result = if held.count == 1 {
            FRAMES.free(&pin(), held.frame)
        } else {
            FRAMES.free_contiguous(&pin(), held.frame, held.count)
        };
        self.ops += 1;
        if let Err(e) = result {
            self.fail(format!("cpu {}: free refused: {e}", self.cpu));
        }
        link
    }

    fn tick(&self) {
        if let Some(live) = self.live {
            live.poll(self.ops);
        }
    }
}
