//! The node table: which physical memory and which CPUs belong to which NUMA node, and how far
//! nodes are from each other.
//!
//! `mm` knows no firmware tables. The kernel reads its affinity tables (ACPI SRAT and SLIT) and
//! hands the enabled records to [`NodeLayout::from_affinity`] as plain values
//! ([`MemoryAffinity`], [`CpuAffinity`], [`Distances`]); the result goes to
//! [`crate::FrameAllocator::set_layout`]. On error the kernel prints the [`TopologyError`] and
//! keeps [`NodeLayout::single`]: one node owning all memory, which is exactly the allocator's
//! behaviour without a layout.
//!
//! # Implementation
//! Proximity domains are sparse 32-bit numbers; nodes are dense, `0..node_count()`, assigned in
//! ascending domain order, so node 0 is the lowest domain. Everything is a fixed array (no heap):
//! the table is `Copy` and a few KiB. Per node the table keeps its distances to every node and a
//! fallback order (every node, nearest first, itself first, ties by node number) that the
//! allocator walks when a node runs empty. Memory spans are kept sorted by address; looking up a
//! frame's node is a binary search (the allocator's fast path uses its own 2 MiB granule table
//! built from these spans instead).
#![deny(unsafe_code)]

use crate::frame::{Frame, PhysRange};
pub use crate::topology_error::TopologyError;

/// Nodes a layout can describe: 8. Each node costs the allocator one `BitAlloc16M` (about
/// 2.2 MB in the `static`) and one depot; 8 covers every two- and four-socket machine, even
/// with sub-NUMA clustering (two nodes per socket), while keeping the `static` allocator near
/// 20 MB. A machine with more domains is refused and runs as one node. Loom builds use 2, so
/// a model's allocator fits a model thread's stack.
pub const MAX_NODES: usize = if cfg!(loom) { 2 } else { 8 };

/// Memory affinity records a layout can hold: 64, several per node (firmware splits a node's
/// memory around holes such as the PCI window below 4 GiB). Loom builds use 4.
pub const MAX_AFFINITY_RANGES: usize = if cfg!(loom) { 4 } else { 64 };

/// An enabled SRAT-like memory affinity record (physical byte range -> proximity domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryAffinity {
    /// The proximity domain the range belongs to.
    pub domain: u32,
    /// First byte of the range.
    pub base: u64,
    /// Length of the range in bytes.
    pub length: u64,
}

/// An enabled SRAT-like CPU affinity record (opaque hardware id, the APIC ID in the kernel ->
/// domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuAffinity {
    /// The CPU's hardware id.
    pub hw_id: u32,
    /// The proximity domain it belongs to.
    pub domain: u32,
}

/// SLIT-like distances: `matrix[i * domains + j]` is the distance from domain i to domain j
/// (10 = local).
#[derive(Clone, Copy, Debug)]
pub struct Distances<'a> {
    /// Domains the matrix covers (its side).
    pub domains: usize,
    /// `domains * domains` distances, row-major.
    pub matrix: &'a [u8],
}

/// Distance between nodes when no matrix is given, and between a node and itself.
const LOCAL: u8 = 10;
/// Distance between different nodes when no matrix is given (ACPI's default remote distance).
const REMOTE: u8 = 20;

/// The node table: dense node numbers `0..node_count()`, memory spans per node, distances and
/// fallback orders. Fixed size, no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLayout {
    node_count: usize,
    domains: [u32; MAX_NODES],
    distance: [[u8; MAX_NODES]; MAX_NODES],
    fallback: [[u8; MAX_NODES]; MAX_NODES],
    /// `(first byte, end byte, node)`, sorted by address, disjoint.
    spans: [(u64, u64, u8); MAX_AFFINITY_RANGES],
    span_count: usize,
}

impl NodeLayout {
    /// All zero bytes: no node at all. The allocator's `static` holds this until a layout is
    /// set, and reads it as [`NodeLayout::single`].
    pub(crate) const fn zeroed() -> Self {
        Self {
            node_count: 0,
            domains: [0; MAX_NODES],
            distance: [[0; MAX_NODES]; MAX_NODES],
            fallback: [[0; MAX_NODES]; MAX_NODES],
            spans: [(0, 0, 0); MAX_AFFINITY_RANGES],
            span_count: 0,
        }
    }

    /// One node (domain 0) owning all memory: the allocator's behaviour without a layout.
    pub const fn single() -> Self {
        let mut layout = Self::zeroed();
        layout.node_count = 1;
        layout.distance[0][0] = LOCAL;
        layout
    }

    /// Builds the table. Domains are renumbered densely in ascending domain order.
    /// `cpu_hw_ids` are the hardware ids of the CPUs actually present, in CPU-number order;
    /// `cpu_nodes[i]` receives CPU i's node. Without distances: 10 local, 20 remote. Memory
    /// outside every record is not an error (it goes to node 0 when added, and is counted).
    pub fn from_affinity(
        memory: &[MemoryAffinity],
        cpus: &[CpuAffinity],
        distances: Option<Distances<'_>>,
        cpu_hw_ids: &[u32],
        cpu_nodes: &mut [u8],
    ) -> Result<Self, TopologyError> {
        let mut layout = Self::single();
        layout.node_count = 0;
        layout.collect_spans(memory)?;
        for cpu in cpus {
            layout
                .node_of_domain(cpu.domain)
                .ok_or(TopologyError::NodeWithoutMemory { domain: cpu.domain })?;
        }
        layout.place_cpus(cpus, cpu_hw_ids, cpu_nodes)?;
        layout.fill_distances(distances)?;
        layout.fill_fallback();
        Ok(layout)
    }

    /// Copies the non-empty records into `spans` (domains for now), sorted, checked disjoint.
    fn collect_spans(&mut self, memory: &[MemoryAffinity]) -> Result<(), TopologyError> {
        if memory.len() > MAX_AFFINITY_RANGES {
            return Err(TopologyError::TooManyRanges {
                count: memory.len(),
            });
        }
        let mut records = [MemoryAffinity {
            domain: 0,
            base: 0,
            length: 0,
        }; MAX_AFFINITY_RANGES];
        let mut n = 0;
        for &range in memory.iter().filter(|r| r.length > 0) {
            if range.base.checked_add(range.length).is_none() {
                return Err(TopologyError::BadRange { range });
            }
            records[n] = range;
            n += 1;
        }
        let records = &mut records[..n];
        records.sort_unstable_by_key(|r| (r.base, r.length));
        for pair in records.windows(2) {
            if pair[0].base + pair[0].length > pair[1].base {
                let (first, second) = (pair[0], pair[1]);
                return Err(TopologyError::Overlap { first, second });
            }
        }
        if records.is_empty() {
            return Err(TopologyError::Empty);
        }
        self.span_count = n;
        for (span, r) in self.spans.iter_mut().zip(records.iter()) {
            *span = (r.base, r.base + r.length, 0);
        }
        self.collect_domains(records)
    }

    /// Records the distinct domains of `records` (sorted by address) in ascending order and
    /// tags each span with its node.
    fn collect_domains(&mut self, records: &[MemoryAffinity]) -> Result<(), TopologyError> {
        let mut domains = [u32::MAX; MAX_AFFINITY_RANGES];
        for (slot, r) in domains.iter_mut().zip(records) {
            *slot = r.domain;
        }
        let domains = &mut domains[..records.len()];
        domains.sort_unstable();
        let mut count = 0;
        for i in 0..domains.len() {
            if i > 0 && domains[i] == domains[i - 1] {
                continue;
            }
            if count == MAX_NODES {
                return Err(TopologyError::TooManyNodes { domain: domains[i] });
            }
            self.domains[count] = domains[i];
            count += 1;
        }
        self.node_count = count;
        for (i, r) in records.iter().enumerate() {
            self.spans[i].2 = self.node_of_domain(r.domain).unwrap_or(0) as u8;
        }
        Ok(())
    }

    /// The node of proximity domain `domain`, if it owns memory.
    fn node_of_domain(&self, domain: u32) -> Option<usize> {
        self.domains[..self.node_count]
            .iter()
            .position(|&d| d == domain)
    }

    /// Writes each present CPU's node into `cpu_nodes`.
    fn place_cpus(
        &self,
        cpus: &[CpuAffinity],
        cpu_hw_ids: &[u32],
        cpu_nodes: &mut [u8],
    ) -> Result<(), TopologyError> {
        if cpu_nodes.len() < cpu_hw_ids.len() {
            let (cpus, slots) = (cpu_hw_ids.len(), cpu_nodes.len());
            return Err(TopologyError::CpuSlots { cpus, slots });
        }
        for (slot, &hw_id) in cpu_nodes.iter_mut().zip(cpu_hw_ids) {
            let record = cpus.iter().find(|c| c.hw_id == hw_id);
            let record = record.ok_or(TopologyError::CpuWithoutNode { hw_id })?;
            // Checked by `from_affinity` before: every CPU record's domain owns memory.
            *slot = self.node_of_domain(record.domain).unwrap_or(0) as u8;
        }
        Ok(())
    }

    /// Fills the node distance table from the domain matrix, or 10/20 without one.
    fn fill_distances(&mut self, distances: Option<Distances<'_>>) -> Result<(), TopologyError> {
        let nodes = self.node_count;
        for from in 0..nodes {
            for to in 0..nodes {
                self.distance[from][to] = if from == to { LOCAL } else { REMOTE };
            }
        }
        let Some(d) = distances else { return Ok(()) };
        if d.domains.checked_mul(d.domains) != Some(d.matrix.len()) {
            let (domains, len) = (d.domains, d.matrix.len());
            return Err(TopologyError::DistanceSize { domains, len });
        }
        for &domain in &self.domains[..nodes] {
            if domain as usize >= d.domains {
                let domains = d.domains;
                return Err(TopologyError::DomainOutsideDistances { domain, domains });
            }
        }
        for from in 0..nodes {
            for to in 0..nodes {
                let (a, b) = (self.domains[from], self.domains[to]);
                let distance = d.matrix[a as usize * d.domains + b as usize];
                let local = from == to;
                if distance < LOCAL || (local && distance != LOCAL) {
                    return Err(TopologyError::BadDistance {
                        from: a,
                        to: b,
                        distance,
                    });
                }
                self.distance[from][to] = distance;
            }
        }
        Ok(())
    }

    /// Sorts every node by distance from each node: itself first, ties by node number.
    fn fill_fallback(&mut self) {
        let nodes = self.node_count;
        for from in 0..nodes {
            let order = &mut self.fallback[from][..nodes];
            for (i, slot) in order.iter_mut().enumerate() {
                *slot = i as u8;
            }
            let distance = &self.distance[from];
            order.sort_unstable_by_key(|&to| (to as usize != from, distance[to as usize], to));
        }
    }

    /// Number of nodes (at least 1).
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The original proximity domain of `node`, for printing.
    pub fn domain(&self, node: usize) -> u32 {
        self.domains[node]
    }

    /// The distance from node `from` to node `to` (10 = local).
    pub fn distance(&self, from: usize, to: usize) -> u8 {
        self.distance[from][to]
    }

    /// Every node, nearest to `node` first (`node` itself first), ties by node number.
    pub fn fallback_order(&self, node: usize) -> &[u8] {
        &self.fallback[node][..self.node_count]
    }

    /// The home node of `frame`: the node of the span holding its first byte, 0 if none does.
    pub fn node_of(&self, frame: Frame) -> usize {
        self.node_of_address(frame.start_address())
    }

    /// The node of the span holding byte `address`, 0 if none does.
    pub(crate) fn node_of_address(&self, address: u64) -> usize {
        let spans = &self.spans[..self.span_count];
        let i = spans.partition_point(|&(_, end, _)| end <= address);
        match spans.get(i) {
            Some(&(start, _, node)) if start <= address => node as usize,
            _ => 0,
        }
    }

    /// Where frame number `frame` lies: `(node, end, inside)`, where `frame..end` (cut at
    /// `limit`) lies in one span of `node` (`inside`) or in no span (`!inside`, node 0).
    /// A frame belongs to the span holding its first byte.
    pub(crate) fn piece_at(&self, frame: u64, limit: u64) -> (usize, u64, bool) {
        let to_frame = |byte: u64| byte.div_ceil(crate::frame::FRAME_SIZE);
        let spans = &self.spans[..self.span_count];
        let i = spans.partition_point(|&(_, end, _)| to_frame(end) <= frame);
        match spans.get(i) {
            Some(&(start, end, node)) if to_frame(start) <= frame => {
                (node as usize, to_frame(end).min(limit), true)
            }
            Some(&(start, _, _)) => (0, to_frame(start).min(limit), false),
            None => (0, limit, false),
        }
    }

    /// The memory spans with their node, in address order.
    pub fn spans(&self) -> impl Iterator<Item = (PhysRange, usize)> + '_ {
        self.spans[..self.span_count]
            .iter()
            .map(|&(start, end, node)| (PhysRange::new(start, end), node as usize))
    }
}

impl Default for NodeLayout {
    fn default() -> Self {
        Self::single()
    }
}

#[cfg(all(test, not(loom)))]
#[path = "topology_tests.rs"]
mod tests;
