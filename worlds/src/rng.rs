//! Seeded randomness: SplitMix64, stateless (`mix`) and as a stream (`Rng`).
//!
//! Every random choice of a world is drawn from a stream named by the world's seed, a purpose
//! (`Stream`) and the indices of what it decides (miner, cycle, listing). Streams do not depend
//! on each other, so adding a miner or an audit does not change anybody else's rows.

/// What a stream decides. Each purpose has its own salt, so two purposes never share draws.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    /// A listing's address, place and starting truth.
    Listing = 1,
    /// A listing's truth drifting between two cycles.
    Drift = 2,
    /// Which listings the ring lies about.
    RingTargets = 3,
    /// A miner's hotkey.
    Hotkey = 4,
    /// A miner's error rate and coverage share.
    Profile = 5,
    /// Which listings a miner scrapes in a cycle, and when it uploads.
    Coverage = 6,
    /// The values of one reported row.
    Row = 7,
    /// A jittering copier's changes to one copied object.
    Jitter = 8,
    /// The validator's choice of listings to audit in a cycle.
    Audits = 9,
    /// Which listings are hard pages, and a miner's misreading of one.
    HardPages = 10,
}

/// SplitMix64 of `seed` and two integers: a stateless, reproducible random number.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 stream.
pub struct Rng(u64);

impl Rng {
    /// The stream of `purpose` for the indices `a` and `b` of the world `seed`.
    pub fn new(seed: u64, purpose: Stream, a: u64, b: u64) -> Rng {
        Rng(mix(mix(seed, purpose as u64, 0), a, b))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0, 0, 0)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `low..high` (`low` < `high`).
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low) as u64) as i64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [`low`, `high`).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// An element of `items` other than `current` (`items` has at least two distinct values).
    pub fn pick_other<T: Copy + PartialEq>(&mut self, items: &[T], current: T) -> T {
        loop {
            let item = self.pick(items);
            if item != current {
                return item;
            }
        }
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |purpose, a| {
            let mut rng = Rng::new(7, purpose, a, 0);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(Stream::Row, 1), draw(Stream::Row, 1));
        assert_ne!(draw(Stream::Row, 1), draw(Stream::Row, 2));
        assert_ne!(draw(Stream::Row, 1), draw(Stream::Jitter, 1));
    }

    #[test]
    fn ranges_hold() {
        let mut rng = Rng::new(1, Stream::Row, 0, 0);
        for _ in 0..1000 {
            assert!((3..9).contains(&rng.between(3, 9)));
            let u = rng.uniform(0.5, 0.7);
            assert!((0.5..0.7).contains(&u));
            assert_ne!(rng.pick_other(&[1, 2, 3], 2), 2);
        }
    }
}
