//! loader logic (skeleton, being written).
#![no_std]
