use super::*;
use crate::phys::TestMemory;
use crate::protocol::id;
use crate::testutil::{as_bytes, base_revision_from_bytes};
use limine::BaseRevision;
use limine::mp::RequestFlags;
use limine::request::{
    HhdmRequest, MpRequest, RequestsEndMarker, RequestsStartMarker, RsdpRequest, StackSizeRequest,
};
use std::vec::Vec;

/// Concatenates `pieces` as a linker lays out 8-byte aligned statics; returns the image and the
/// offset of each piece.
fn image(pieces: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
    let mut out = std::vec![0xee; 16];
    let mut offsets = Vec::new();
    for p in pieces {
        offsets.push(out.len() as u64);
        out.extend_from_slice(p);
        out.resize(out.len().next_multiple_of(8) + 8, 0);
    }
    (out, offsets)
}

fn ids(scan: &Scan) -> Vec<[u64; 2]> {
    scan.requests().iter().map(|r| r.id).collect()
}

#[test]
fn markers_delimit_the_scan() {
    let (outside_before, outside_after) = (HhdmRequest::new(), RsdpRequest::new());
    let (start, end, rev) = (
        RequestsStartMarker::new(),
        RequestsEndMarker::new(),
        BaseRevision::new(),
    );
    let (hhdm, mp) = (
        HhdmRequest::new(),
        MpRequest::new().with_flags(RequestFlags::X2APIC),
    );
    let stack = StackSizeRequest::new().with_size(0x10_0000);
    let (img, at) = image(&[
        as_bytes(&outside_before),
        as_bytes(&start),
        as_bytes(&rev),
        as_bytes(&hhdm),
        as_bytes(&mp),
        as_bytes(&stack),
        as_bytes(&end),
        as_bytes(&outside_after),
    ]);
    let scan = scan(&img).unwrap();
    assert_eq!(ids(&scan), [id::HHDM, id::MP, id::STACK_SIZE]);
    assert_eq!(
        scan.base_revision,
        Some(BaseRevisionTag {
            offset: at[2],
            requested: 3
        })
    );
    assert_eq!(scan.find(id::MP, 56).map(|r| r.offset), Some(at[4]));
    assert_eq!(
        scan.find(id::RSDP, 48),
        None,
        "requests after the end marker are ignored"
    );
}

#[test]
fn without_markers_the_whole_image_counts_on_8_byte_boundaries() {
    let (hhdm, rsdp) = (HhdmRequest::new(), RsdpRequest::new());
    let (mut img, _) = image(&[as_bytes(&hhdm)]);
    img.extend_from_slice(&[0; 4]);
    img.extend_from_slice(as_bytes(&rsdp));
    img.extend_from_slice(&[0; 12]);
    let scan = scan(&img).unwrap();
    assert_eq!(
        ids(&scan),
        [id::HHDM],
        "a request off the 8-byte grid is not a request"
    );
    assert_eq!(scan.base_revision, None);
}

#[test]
fn duplicates_are_errors() {
    let (a, b) = (HhdmRequest::new(), HhdmRequest::new());
    assert_eq!(
        scan(&image(&[as_bytes(&a), as_bytes(&b)]).0).unwrap_err(),
        Error::DuplicateRequest { id: id::HHDM[0] }
    );
    let (r1, r2) = (BaseRevision::new(), BaseRevision::new());
    assert_eq!(
        scan(&image(&[as_bytes(&r1), as_bytes(&r2)]).0).unwrap_err(),
        Error::DuplicateBaseRevision
    );
    // A start marker between them discards the first, so this is no duplicate.
    let start = RequestsStartMarker::new();
    assert!(scan(&image(&[as_bytes(&a), as_bytes(&start), as_bytes(&b)]).0).is_ok());
}

#[test]
fn truncated_requests_are_found_but_not_answered() {
    let stack = StackSizeRequest::new().with_size(0x4000);
    let bytes = as_bytes(&stack);
    let mut img = std::vec![0u8; 8];
    img.extend_from_slice(&bytes[..48]);
    let scan = scan(&img).unwrap();
    assert_eq!(ids(&scan), [id::STACK_SIZE]);
    assert_eq!(scan.find(id::STACK_SIZE, 48).map(|r| r.available), Some(48));
    assert_eq!(
        scan.find(id::STACK_SIZE, 56),
        None,
        "its size field is outside the image"
    );
}

#[test]
fn too_many_requests_is_an_error() {
    let mut img = Vec::new();
    for i in 0..=MAX_REQUESTS as u64 {
        for w in [COMMON_MAGIC[0], COMMON_MAGIC[1], i, !i, 0, 0] {
            img.extend_from_slice(&w.to_le_bytes());
        }
    }
    assert_eq!(scan(&img).unwrap_err(), Error::TooManyRequests);
}

/// Runs the handshake on a tag requesting `revision`; returns the loaded revision and what the
/// `limine` crate reads back from the tag.
fn handshake_for(revision: u64) -> (u64, BaseRevision) {
    let tag = BaseRevision::with_revision(revision);
    let (img, at) = image(&[as_bytes(&tag)]);
    let mut mem = TestMemory::new(0x20_0000, img.len());
    mem.bytes.copy_from_slice(&img);
    let found = scan(&img).unwrap().base_revision;
    assert_eq!(
        found,
        Some(BaseRevisionTag {
            offset: at[0],
            requested: revision
        })
    );
    let loaded = handshake(&mut mem, 0x20_0000, found).unwrap();
    let after = base_revision_from_bytes(mem.bytes(0x20_0000 + at[0], 24).unwrap());
    (loaded, after)
}

#[test]
fn supported_revisions_are_acknowledged() {
    for rev in 0..=3 {
        let (loaded, tag) = handshake_for(rev);
        assert_eq!(loaded, rev);
        assert!(tag.is_supported(), "revision {rev}");
        assert!(tag.is_valid());
        assert_eq!(tag.loaded_revision(), Some(rev));
    }
}

#[test]
fn newer_revisions_load_as_3_and_stay_unsupported() {
    let (loaded, tag) = handshake_for(5);
    assert_eq!(loaded, 3);
    assert!(!tag.is_supported(), "the kernel must see the refusal");
    assert_eq!(tag.loaded_revision(), Some(3));
}

#[test]
fn no_tag_means_revision_0_and_no_write() {
    let mut mem = TestMemory::new(0, 64);
    assert_eq!(handshake(&mut mem, 0, None), Ok(0));
    assert!(mem.bytes.iter().all(|&b| b == 0));
}
