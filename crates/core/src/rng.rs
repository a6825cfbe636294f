//! xorshift64: the small deterministic generator behind the shuffled epochs, the benchmarks'
//! synthetic data and the tests' vectors (the same stream on every platform, no RNG crate).

/// A xorshift64 stream from `seed`; a zero seed becomes 1 (xorshift never leaves 0).
pub fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
