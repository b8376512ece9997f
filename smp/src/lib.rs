//! smp (skeleton, being written).
#![no_std]
