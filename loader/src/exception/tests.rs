use super::*;
use std::string::ToString;

#[test]
fn error_code_vectors_match_the_sdm() {
    let with: std::vec::Vec<u8> = (0..VECTORS as u8).filter(|&v| has_error_code(v)).collect();
    assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    assert!(!has_error_code(32) && !has_error_code(255));
}

#[test]
fn every_vector_has_a_one_line_name() {
    for v in 0..VECTORS as u64 {
        let n = name(v);
        assert!(
            !n.is_empty() && !n.contains(['\n', '\r', '(', ')']),
            "{v}: {n:?}"
        );
    }
    assert_eq!(name(u64::from(PAGE_FAULT)), "page fault");
    assert_eq!(name(u64::from(INVALID_OPCODE)), "invalid opcode");
    assert_eq!(name(8), "double fault");
    assert_eq!(name(13), "general protection");
    assert_eq!(name(0), "divide error");
    assert_eq!(name(31), "reserved");
    assert_eq!(name(32), "unknown vector");
    assert_eq!(name(u64::MAX), "unknown vector");
}

/// The SDM's field layout, byte by byte: offset 15:0, selector, IST, type/attributes,
/// offset 31:16, offset 63:32, reserved.
#[test]
fn gates_follow_the_sdm_layout() {
    let handler = 0x1122_3344_5566_7788u64;
    let bytes = Gate::interrupt(handler, 0x28).to_bytes();
    assert_eq!(&bytes[0..2], &0x7788u16.to_le_bytes(), "offset 15:0");
    assert_eq!(&bytes[2..4], &0x28u16.to_le_bytes(), "selector");
    assert_eq!(bytes[4], 0, "IST 0, no stack switch");
    assert_eq!(bytes[5], 0x8e, "present, DPL 0, 64-bit interrupt gate");
    assert_eq!(&bytes[6..8], &0x5566u16.to_le_bytes(), "offset 31:16");
    assert_eq!(&bytes[8..12], &0x1122_3344u32.to_le_bytes(), "offset 63:32");
    assert_eq!(&bytes[12..16], &[0; 4], "reserved");
    assert_eq!(Gate::MISSING.to_bytes(), [0; 16]);
    assert_eq!(core::mem::size_of::<Gate>(), 16);
}

#[test]
fn a_loader_handler_gate() {
    // A stub in the loader image at 1 MiB, through the loader's 64-bit code segment.
    assert_eq!(
        Gate::interrupt(0x10_2340, 0x28),
        Gate([0x0010_8e00_0028_2340, 0])
    );
}

/// A BSP report of `vector` at `cr2`, the guard page at 0x11_2000.
fn report(vector: u64, cr2: u64) -> Report {
    Report {
        ap: None,
        vector,
        error_code: 0,
        rip: 0x10_2a3b,
        cr2,
        rsp: 0x11_3010,
        stack_guard: 0x11_2000,
    }
}

#[test]
fn the_report_is_one_line() {
    let r = report(14, FAULT_ADDRESS);
    assert_eq!(
        r.to_string(),
        "CPU exception 14 (page fault) error=0x0 rip=0x102a3b cr2=0x1deadb000"
    );
    let gp = Report {
        error_code: 0x28,
        rip: 0xffff_8000_0010_0000,
        ..report(13, 0)
    };
    assert_eq!(
        gp.to_string(),
        "CPU exception 13 (general protection) error=0x28 rip=0xffff800000100000 cr2=0x0"
    );
    for vector in 0..=VECTORS as u64 {
        let line = Report { vector, ..r }.to_string();
        assert!(!line.contains(['\n', '\r']), "{line:?}");
    }
}

#[test]
fn an_ap_report_names_the_ap() {
    let r = Report {
        ap: Some(3),
        rip: 0xffff_8000_0000_8123,
        ..report(14, FAULT_ADDRESS)
    };
    assert_eq!(
        r.to_string(),
        "AP with APIC ID 3: CPU exception 14 (page fault) error=0x0 rip=0xffff800000008123 \
         cr2=0x1deadb000"
    );
    assert!(
        !Report {
            cr2: 0x11_2ff8,
            ..r
        }
        .is_stack_overflow(),
        "APs have no guard"
    );
}

#[test]
fn a_fault_in_the_guard_page_is_a_stack_overflow() {
    let df = report(8, 0x11_2ff8);
    assert!(df.is_stack_overflow());
    assert_eq!(
        df.to_string(),
        "stack overflow into the guard page at 0x112000: CPU exception 8 (double fault) \
         error=0x0 rip=0x102a3b cr2=0x112ff8 rsp=0x113010"
    );
    assert!(report(14, 0x11_2000).is_stack_overflow());
    assert!(
        !report(14, 0x11_3000).is_stack_overflow(),
        "above the guard"
    );
    assert!(
        !report(14, 0x11_1fff).is_stack_overflow(),
        "below the guard"
    );
    assert!(
        !report(13, 0x11_2ff8).is_stack_overflow(),
        "not a page fault"
    );
    let unguarded = Report {
        stack_guard: 0,
        ..report(14, 0x10)
    };
    assert!(!unguarded.is_stack_overflow());
}

#[test]
fn the_ist_field_is_bits_32_to_34() {
    let gate = Gate::interrupt(0x10_2340, 0x28).with_ist(DOUBLE_FAULT_IST);
    assert_eq!(gate.to_bytes()[4], 1);
    assert_eq!(gate, Gate([0x0010_8e01_0028_2340, 0]));
}

#[test]
fn the_hook_is_read_from_the_command_line() {
    assert_eq!(fault_hook(b""), Ok(None));
    assert_eq!(fault_hook(b"test=boot"), Ok(None));
    assert_eq!(fault_hook(b"loader.fault=page"), Ok(Some(Fault::Page)));
    assert_eq!(
        fault_hook(b"test=boot  loader.fault=ud\tsmp=4"),
        Ok(Some(Fault::InvalidOpcode))
    );
    assert_eq!(
        fault_hook(b"loader.fault=ud loader.fault=page"),
        Ok(Some(Fault::Page)),
        "the last word wins"
    );
    assert_eq!(
        fault_hook(b"xloader.fault=page"),
        Ok(None),
        "whole words only"
    );
    assert_eq!(
        fault_hook(b"loader.fault=pagex"),
        Err(Error::UnknownFaultHook)
    );
    assert_eq!(fault_hook(b"loader.fault="), Err(Error::UnknownFaultHook));
    assert_eq!(
        fault_hook(b"loader.fault=stack"),
        Ok(Some(Fault::StackOverflow))
    );
    assert_eq!(fault_hook(b"loader.fault=ap-page"), Ok(Some(Fault::ApPage)));
}
