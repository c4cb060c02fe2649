//! How a blob is cut into stripes, each sent down its own distribution tree: the byte range of each, the same on every fetcher and in the simulation.
//! It only computes ranges; it must not choose who sends a stripe (ranking does) nor do I/O.

/// The shortest stripe worth a tree of its own: below it the per-request cost outweighs the
/// parallelism, so a smaller blob gets fewer stripes (one, under twice this size).
pub const MIN_STRIPE: u64 = 1 << 20;

/// The fetcher's `--stripes` default: one stream down one tree of `--fanout`. The fleet
/// simulation picks 8 for 100 to 10,000 nodes, but on the namespace hosts 8 stripes are still
/// slower than the chain (the unpacker waits for the contiguous prefix, which stripes fill
/// last), so 8 is opt-in until that is fixed.
pub const DEFAULT_STRIPES: usize = 1;

/// The fetcher's `--upload-cap` default; with `--stripes N` give it at least N + 2 (a node
/// serves its home stripe to up to N children).
pub const DEFAULT_UPLOAD_CAP: usize = 4;

/// A blob of `size` bytes cut into `count` contiguous stripes of nearly equal length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripes {
    size: u64,
    count: usize,
}

impl Stripes {
    /// `wanted` stripes (`--stripes`) over `nodes` nodes, fewer when they would be shorter than
    /// [`MIN_STRIPE`] or outnumber the nodes (each stripe's root is the node whose home stripe
    /// it is; with more stripes than nodes one node would root several and upload them all).
    /// Every fetcher cuts a blob the same way from the same flag, size and peer list; one that
    /// briefly sees another list asks for other ranges, which still serve.
    pub fn new(size: u64, wanted: usize, nodes: usize) -> Self {
        let fit = (size / MIN_STRIPE).max(1);
        let count = (wanted.min(nodes).max(1) as u64).min(fit) as usize;
        Self { size, count }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn bound(&self, j: usize) -> u64 {
        (self.size as u128 * j as u128 / self.count as u128) as u64
    }

    /// Stripe `j`'s bytes, `start..end`.
    pub fn range(&self, j: usize) -> std::ops::Range<u64> {
        self.bound(j)..self.bound(j + 1)
    }

    pub fn len(&self, j: usize) -> u64 {
        self.bound(j + 1) - self.bound(j)
    }

    /// The stripe holding byte `pos` (the last one for `pos` at or past the end).
    pub fn containing(&self, pos: u64) -> usize {
        let mut j = ((pos as u128 * self.count as u128) / self.size.max(1) as u128) as usize;
        j = j.min(self.count - 1);
        while j + 1 < self.count && self.bound(j + 1) <= pos {
            j += 1;
        }
        while j > 0 && self.bound(j) > pos {
            j -= 1;
        }
        j
    }

    /// Where the bytes readable from `pos` end, when stripe `j` has its first `written[j]`
    /// bytes (a reader crosses into the next stripe only where that one has its start).
    pub fn readable_to(&self, written: &[u64], pos: u64) -> u64 {
        let mut j = self.containing(pos);
        loop {
            let got = written.get(j).copied().unwrap_or(0).min(self.len(j));
            let end = self.bound(j) + got;
            if got < self.len(j) || j + 1 == self.count {
                return end;
            }
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_cover_the_blob_once_and_small_blobs_get_fewer() {
        let s = Stripes::new(10 * MIN_STRIPE + 3, 8, 100);
        assert_eq!(s.count(), 8);
        let mut next = 0;
        for j in 0..8 {
            let r = s.range(j);
            assert_eq!(r.start, next);
            assert!(s.len(j) >= MIN_STRIPE);
            assert_eq!(s.containing(r.start), j);
            assert_eq!(s.containing(r.end - 1), j);
            next = r.end;
        }
        assert_eq!(next, s.size());
        assert_eq!(Stripes::new(3 * MIN_STRIPE, 8, 100).count(), 3);
        assert_eq!(Stripes::new(100, 8, 100).count(), 1);
        assert_eq!(Stripes::new(0, 8, 100).count(), 1);
        assert_eq!(Stripes::new(100 * MIN_STRIPE, 0, 100).count(), 1);
        // No more stripes than nodes: each node roots at most one.
        assert_eq!(Stripes::new(100 * MIN_STRIPE, 8, 5).count(), 5);
        assert_eq!(Stripes::new(100 * MIN_STRIPE, 8, 0).count(), 1);
    }

    #[test]
    fn a_reader_crosses_into_the_next_stripe_only_as_far_as_it_was_written() {
        let s = Stripes::new(4 * MIN_STRIPE, 4, 4);
        let m = MIN_STRIPE;
        // Stripe 0 complete, stripe 1 has 10 bytes, stripe 2 is ahead of stripe 1.
        let written = [m, 10, m / 2, 0];
        assert_eq!(s.readable_to(&written, 0), m + 10);
        assert_eq!(s.readable_to(&written, m + 10), m + 10);
        assert_eq!(s.readable_to(&written, 2 * m), 2 * m + m / 2);
        assert_eq!(s.readable_to(&written, 3 * m), 3 * m);
        assert_eq!(s.readable_to(&[m; 4], 0), 4 * m);
        // One stripe: the plain prefix.
        assert_eq!(Stripes::new(100, 8, 8).readable_to(&[42], 7), 42);
    }
}
