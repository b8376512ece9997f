//! arch (skeleton, being written).
#![no_std]
