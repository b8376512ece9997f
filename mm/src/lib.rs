//! mm (skeleton, being written).
#![no_std]
