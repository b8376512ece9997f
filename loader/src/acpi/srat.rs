//! The SRAT test hooks: QEMU's System Resource Affinity Table made semantically malformed.
//!
//! With `-numa node,...` QEMU's firmware builds an SRAT (ACPI 6.5 section 5.2.16) that puts
//! every CPU and memory range in a proximity domain. A kernel must not trust it blindly: the
//! `loader.corrupt=srat-*` hooks ([`Corruption`]) rewrite it in place before hand-off, keeping
//! its checksum valid, so the kernel sees a well-formed table that describes an impossible or
//! awkward machine:
//! - `srat-overlap`: two enabled memory ranges of different domains overlap by one page;
//! - `srat-cpu`: one enabled CPU entry names an APIC ID no CPU has, so a present CPU has no
//!   domain;
//! - `srat-memless`: all memory of one domain that has CPUs moves to another domain.
//!
//! [`corrupt`] returns what it changed ([`Edit`]); its `Display` is the hook's log line.
//!
//! # Implementation
//! Affinity structures start at offset 48 (header, 4 reserved bytes, 8 reserved bytes). The
//! loader reads three kinds (section 5.2.16.1-5.2.16.3): Processor Local APIC/SAPIC Affinity
//! (type 0, 16 bytes: domain bits 7:0 at 2, APIC ID at 3, flags at 4, domain bits 31:8 at 9),
//! Memory Affinity (type 1, 40 bytes: domain at 2, base at 8, length at 16, flags at 28) and
//! Processor Local x2APIC Affinity (type 2, 24 bytes: domain at 4, x2APIC ID at 8, flags at
//! 12). Flag bit 0 is "enabled" in all three. Every change ends with [`fix_checksum`].

use super::edit::fix_checksum;
use crate::Error;
use crate::phys::PAGE_SIZE;
use core::fmt;

/// Offset of the first affinity structure.
const FIRST_ENTRY: usize = 48;
const CPU_APIC: u8 = 0;
const MEMORY: u8 = 1;
const CPU_X2APIC: u8 = 2;
const ENABLED: u32 = 1;

/// What a `loader.corrupt=srat-*` hook breaks (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// `srat-overlap`.
    Overlap,
    /// `srat-cpu`.
    Cpu,
    /// `srat-memless`.
    Memless,
}

impl Corruption {
    /// The hook's value, `srat-...`, for `name` on the command line.
    pub fn from_name(name: &[u8]) -> Option<Corruption> {
        match name {
            b"srat-overlap" => Some(Corruption::Overlap),
            b"srat-cpu" => Some(Corruption::Cpu),
            b"srat-memless" => Some(Corruption::Memless),
            _ => None,
        }
    }
}

/// What [`corrupt`] changed; `Display` is the log line after `test hook `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The memory range of `low_domain` now reaches one page into `high_domain`'s, which
    /// starts at `high_base`; `low_base..low_end` is its new extent.
    Overlap {
        /// Domain of the stretched range.
        low_domain: u32,
        /// Its base.
        low_base: u64,
        /// Its new end (exclusive).
        low_end: u64,
        /// Domain of the range it now overlaps.
        high_domain: u32,
        /// Base of that range.
        high_base: u64,
    },
    /// The CPU entry for APIC ID `old` now says `new`, an ID no CPU has.
    Cpu {
        /// The present CPU that lost its domain.
        old: u32,
        /// The ID the entry names instead.
        new: u32,
        /// The domain the entry gives.
        domain: u32,
    },
    /// Every memory range of domain `from` now belongs to domain `to`.
    Memless {
        /// The domain left with CPUs and no memory.
        from: u32,
        /// The domain that received its memory.
        to: u32,
        /// How many memory ranges moved.
        ranges: usize,
    },
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Edit::Overlap {
                low_domain,
                low_base,
                low_end,
                high_domain,
                high_base,
            } => write!(
                f,
                "loader.corrupt=srat-overlap: SRAT memory of domain {low_domain} \
                 [{low_base:#x}, {low_end:#x}) overlaps domain {high_domain} at {high_base:#x}"
            ),
            Edit::Cpu { old, new, domain } => write!(
                f,
                "loader.corrupt=srat-cpu: SRAT names APIC ID {new} (no such CPU) in domain \
                 {domain} instead of APIC ID {old}, which has no domain"
            ),
            Edit::Memless { from, to, ranges } => write!(
                f,
                "loader.corrupt=srat-memless: SRAT memory of domain {from} ({ranges} ranges) \
                 moved to domain {to}; domain {from} keeps its CPUs and has no memory"
            ),
        }
    }
}

/// One affinity structure: where it is and what it says.
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: usize,
    kind: u8,
    domain: u32,
    /// The APIC ID (CPU entries) or the base (memory entries).
    id_or_base: u64,
    /// The length (memory entries), 0 for CPUs.
    len: u64,
    is_enabled: bool,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes the structure `e` at offset `at`, if it is one of the three kinds and long enough.
fn decode(at: usize, e: &[u8]) -> Option<Entry> {
    let (kind, len) = (e[0], e.len());
    let (domain, id_or_base, size, flags) = match kind {
        CPU_APIC if len >= 16 => {
            let high = u32_at(e, 8) >> 8; // bytes 9..12: domain bits 31:8
            (
                u32::from(e[2]) | high << 8,
                u64::from(e[3]),
                0,
                u32_at(e, 4),
            )
        }
        MEMORY if len >= 40 => (u32_at(e, 2), u64_at(e, 8), u64_at(e, 16), u32_at(e, 28)),
        CPU_X2APIC if len >= 24 => (u32_at(e, 4), u64::from(u32_at(e, 8)), 0, u32_at(e, 12)),
        _ => return None,
    };
    Some(Entry {
        at,
        kind,
        domain,
        id_or_base,
        len: size,
        is_enabled: flags & ENABLED != 0,
    })
}

/// The affinity structures of `srat` the loader understands, stopping at a malformed one.
fn entries(srat: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    let mut at = FIRST_ENTRY;
    core::iter::from_fn(move || {
        loop {
            let len = usize::from(*srat.get(at + 1)?);
            if len < 2 || at + len > srat.len() {
                return None;
            }
            let this = at;
            at += len;
            if let Some(e) = decode(this, &srat[this..this + len]) {
                return Some(e);
            }
        }
    })
}

/// Enabled CPU entries.
fn cpus(srat: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    entries(srat).filter(|e| e.is_enabled && e.kind != MEMORY)
}

/// Enabled, non-empty memory entries.
fn memory(srat: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    entries(srat).filter(|e| e.is_enabled && e.kind == MEMORY && e.len != 0)
}

/// Rewrites the whole SRAT `srat` as `what` says and fixes its checksum. `present` are the
/// APIC IDs of the machine's CPUs (from the MADT), which `srat-cpu` avoids.
pub fn corrupt(srat: &mut [u8], what: Corruption, present: &[u32]) -> Result<Edit, Error> {
    let edit = match what {
        Corruption::Overlap => overlap(srat)?,
        Corruption::Cpu => unknown_cpu(srat, present)?,
        Corruption::Memless => memless(srat)?,
    };
    fix_checksum(srat);
    Ok(edit)
}

/// `srat-overlap`: a range grows one page into the next range above it of another domain
/// (the first such pair in table order, the lower range being the closest one below).
fn overlap(srat: &mut [u8]) -> Result<Edit, Error> {
    let below = |high: &Entry| {
        memory(srat)
            .filter(|low| low.domain != high.domain && low.id_or_base < high.id_or_base)
            .max_by_key(|low| low.id_or_base)
    };
    let pair = memory(srat).find_map(|high| Some((below(&high)?, high)));
    let Some((low, high)) = pair else {
        return Err(Error::SratHook(
            "no two enabled memory ranges of different domains",
        ));
    };
    let low_end = high.id_or_base + PAGE_SIZE.min(high.len);
    srat[low.at + 16..low.at + 24].copy_from_slice(&(low_end - low.id_or_base).to_le_bytes());
    Ok(Edit::Overlap {
        low_domain: low.domain,
        low_base: low.id_or_base,
        low_end,
        high_domain: high.domain,
        high_base: high.id_or_base,
    })
}

/// `srat-cpu`: the last enabled CPU entry of a present CPU (of any CPU if `present` is empty)
/// names the lowest ID that neither the SRAT nor `present` uses (and its entry type can hold).
fn unknown_cpu(srat: &mut [u8], present: &[u32]) -> Result<Edit, Error> {
    let is_present =
        |e: &Entry| present.is_empty() || present.iter().any(|&p| u64::from(p) == e.id_or_base);
    let Some(victim) = cpus(srat).filter(is_present).last() else {
        return Err(Error::SratHook(
            "no enabled CPU affinity entry of a present CPU",
        ));
    };
    let is_used = |id: u32| {
        present.contains(&id)
            || entries(srat).any(|e| e.kind != MEMORY && e.id_or_base == u64::from(id))
    };
    let limit = if victim.kind == CPU_APIC {
        0xfe
    } else {
        u32::MAX - 1
    };
    let new = (0..=limit)
        .find(|&id| !is_used(id))
        .ok_or(Error::SratHook("no free APIC ID"))?;
    if victim.kind == CPU_APIC {
        srat[victim.at + 3] = new as u8;
    } else {
        srat[victim.at + 8..victim.at + 12].copy_from_slice(&new.to_le_bytes());
    }
    Ok(Edit::Cpu {
        old: victim.id_or_base as u32,
        new,
        domain: victim.domain,
    })
}

/// `srat-memless`: the highest domain with both CPUs and memory gives all its memory to the
/// lowest other domain that has memory.
fn memless(srat: &mut [u8]) -> Result<Edit, Error> {
    let has_cpus = |d: u32| cpus(srat).any(|c| c.domain == d);
    let from = memory(srat)
        .map(|m| m.domain)
        .filter(|&d| has_cpus(d))
        .max();
    let to = from.and_then(|f| memory(srat).map(|m| m.domain).filter(|&d| d != f).min());
    let (Some(from), Some(to)) = (from, to) else {
        return Err(Error::SratHook(
            "no domain with CPUs and memory next to another domain",
        ));
    };
    let mut ranges = 0;
    loop {
        let next = memory(srat).find(|m| m.domain == from);
        let Some(m) = next else { break };
        srat[m.at + 2..m.at + 6].copy_from_slice(&to.to_le_bytes());
        ranges += 1;
    }
    Ok(Edit::Memless { from, to, ranges })
}

#[cfg(test)]
mod tests;
