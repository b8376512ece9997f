//! Finding the kernel's Limine requests and the base revision handshake.
//!
//! [`scan`] walks the loaded image's file-backed bytes on 8-byte boundaries, as Limine does
//! (`limine_load` in `common/protos/limine.c`): a requests start marker discards everything found
//! so far, the first end marker stops the scan, so with markers only the delimited area counts.
//! Every other 8-byte slot starting with the common magic is a request (identified by the next
//! two words); one starting with the base revision magic is the base revision tag. Duplicates of
//! either are errors, as in Limine.
//!
//! [`handshake`] then answers the tag as PROTOCOL.md specifies: the revision the kernel is
//! loaded with goes into the tag's second word (`LIMINE_LOADED_BASE_REVISION`), and the third word
//! (the requested revision) is set to 0 when it is supported (`LIMINE_BASE_REVISION_SUPPORTED`).
//! A request above [`SUPPORTED_BASE_REVISION`] is loaded as that revision with the third word
//! left unchanged, so the kernel sees the refusal. No tag means revision 0.
//!
//! # Implementation
//! The scan records offsets, not references, so the caller can write responses while holding
//! the result.

use crate::Error;
use crate::phys::PhysMem;
use crate::protocol::{
    BASE_REVISION_MAGIC, COMMON_MAGIC, REQUESTS_END_MARKER, REQUESTS_START_MARKER,
};
use crate::protocol::{REQUEST_RESPONSE, SUPPORTED_BASE_REVISION};

#[cfg(test)]
mod tests;

/// How many requests the loader keeps (Limine's limit too).
pub const MAX_REQUESTS: usize = 128;

/// One request found in the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoundRequest {
    /// Byte offset of the request in the image.
    pub offset: u64,
    /// The last two words of its ID.
    pub id: [u64; 2],
    /// Bytes from the request to the end of the scanned area: fields beyond are not read.
    pub available: u64,
}

/// The base revision tag found in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseRevisionTag {
    /// Byte offset of the tag in the image.
    pub offset: u64,
    /// The revision the kernel asks for (third word).
    pub requested: u64,
}

/// Everything [`scan`] found.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The base revision tag, if the kernel has one.
    pub base_revision: Option<BaseRevisionTag>,
    requests: [FoundRequest; MAX_REQUESTS],
    count: usize,
}

impl Scan {
    /// The requests, in image order.
    pub fn requests(&self) -> &[FoundRequest] {
        &self.requests[..self.count]
    }

    /// The request with ID `id`, if present and at least `size` bytes fit in the scanned area
    /// (a truncated request is ignored, as Limine does).
    pub fn find(&self, id: [u64; 2], size: u64) -> Option<FoundRequest> {
        self.requests()
            .iter()
            .find(|r| r.id == id && r.available >= size)
            .copied()
    }

    fn push(&mut self, req: FoundRequest) -> Result<(), Error> {
        if self.requests().iter().any(|r| r.id == req.id) {
            return Err(Error::DuplicateRequest { id: req.id[0] });
        }
        *self
            .requests
            .get_mut(self.count)
            .ok_or(Error::TooManyRequests)? = req;
        self.count += 1;
        Ok(())
    }
}

/// The `n` words at byte `at` of `image`, if they are all inside it.
fn words<const N: usize>(image: &[u8], at: usize) -> Option<[u64; N]> {
    let bytes = image.get(at..at.checked_add(8 * N)?)?;
    let mut out = [0u64; N];
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    Some(out)
}

/// Scans `image` (the loaded image's file-backed bytes) for requests and the base revision tag.
pub fn scan(image: &[u8]) -> Result<Scan, Error> {
    let mut found = Scan {
        base_revision: None,
        requests: [FoundRequest::default(); MAX_REQUESTS],
        count: 0,
    };
    for at in (0..image.len()).step_by(8) {
        if words::<4>(image, at) == Some(REQUESTS_START_MARKER) {
            found.base_revision = None;
            found.count = 0;
            continue;
        }
        let Some(head) = words::<2>(image, at) else {
            break;
        };
        if head == REQUESTS_END_MARKER {
            break;
        }
        if head == BASE_REVISION_MAGIC
            && let Some([_, _, requested]) = words::<3>(image, at)
        {
            if found.base_revision.is_some() {
                return Err(Error::DuplicateBaseRevision);
            }
            found.base_revision = Some(BaseRevisionTag {
                offset: at as u64,
                requested,
            });
        } else if head == COMMON_MAGIC
            && let Some([_, _, a, b]) = words::<4>(image, at)
        {
            let available = (image.len() - at) as u64;
            found.push(FoundRequest {
                offset: at as u64,
                id: [a, b],
                available,
            })?;
        }
    }
    Ok(found)
}

/// Answers the base revision tag in the image at `image_phys` and returns the revision the
/// kernel is loaded with.
pub fn handshake(
    mem: &mut impl PhysMem,
    image_phys: u64,
    tag: Option<BaseRevisionTag>,
) -> Result<u64, Error> {
    let Some(tag) = tag else { return Ok(0) };
    let at = image_phys + tag.offset;
    let loaded = tag.requested.min(SUPPORTED_BASE_REVISION);
    mem.write_u64(at + 8, loaded)?;
    if tag.requested <= SUPPORTED_BASE_REVISION {
        mem.write_u64(at + 16, 0)?;
    }
    Ok(loaded)
}

/// Points request `req` of the image at `image_phys` to the response at virtual address
/// `response_virt`.
pub fn set_response(
    mem: &mut impl PhysMem,
    image_phys: u64,
    req: FoundRequest,
    response_virt: u64,
) -> Result<(), Error> {
    mem.write_u64(image_phys + req.offset + REQUEST_RESPONSE, response_virt)
}
