//! A small, fast, seedable generator for the `random` phase (xorshift64*, Vigna 2016).
#![deny(unsafe_code)]

/// xorshift64*: 64 bits of state, good enough to pick slots and sizes.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded for `cpu` (never the all-zero state xorshift cannot leave).
    pub fn for_cpu(cpu: usize) -> Self {
        Rng(0x9E37_79B9_7F4A_7C15 ^ ((cpu as u64 + 1) << 17))
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
