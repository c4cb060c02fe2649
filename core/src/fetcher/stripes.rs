//! How a blob is cut into stripes, each sent down its own distribution tree: which bytes each holds, the same on every fetcher and in the simulation.
//! It only computes ranges; it must not choose who sends a stripe (ranking does) nor do I/O.

/// The shortest stripe worth a tree of its own: below it the per-request cost outweighs the
/// parallelism, so a smaller blob gets fewer stripes (one, under twice this size).
pub const MIN_STRIPE: u64 = 1 << 20;

/// The shortest piece: each piece is one request, so a stripe is cut into more pieces only
/// while each stays at least this long.
pub const MIN_PIECE: u64 = 1 << 20;

/// The most pieces a stripe is cut into. A stripe is every `count`-th piece of the blob, so
/// the blob's prefix, which the unpacker and the digest follow, grows with all stripes at once
/// (at most one round of pieces behind the slowest), instead of only when the last stripe ends.
pub const MAX_ROUNDS: usize = 8;

/// The most `--stripes`: more would cut a blob into pieces too small to be worth a tree.
pub const MAX_STRIPES: usize = 64;

/// Stripes `--stripes auto` cuts a blob into in a fleet of [`STRIPED_FROM_NODES`] or more.
pub const STRIPES_AT_SCALE: usize = 8;

/// The fleet size from which `--stripes auto` stripes. The fleet simulation (`cargo bench
/// --bench fleet`, 256 MiB, 1 Gbit/s) puts the chain's last node at 1.05 times the physical
/// limit at 100 nodes, 1.13 at 250, 1.24 at 500 and 1.48 at 1,000 (one hop per node), and 8
/// stripes at 1.22 to 1.28 at every size (a constant cost: more flows, 1.25 copies uploaded by
/// the busiest node); the lines cross near 500. On the namespace hosts the chain is also the
/// faster at 16 and 64 hosts, where each link's few Mbit/s split over 16 flows starve TCP.
pub const STRIPED_FROM_NODES: usize = 500;

/// `--stripes`: by fleet size (`auto`), or a fixed count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StripeChoice {
    /// One chain below [`STRIPED_FROM_NODES`] nodes, [`STRIPES_AT_SCALE`] stripes from there.
    #[default]
    Auto,
    Fixed(usize),
}

impl StripeChoice {
    /// The stripes wanted in a fleet of `nodes` (before [`Stripes::new`] fits them to the blob).
    pub fn wanted(self, nodes: usize) -> usize {
        match self {
            StripeChoice::Auto if nodes >= STRIPED_FROM_NODES => STRIPES_AT_SCALE,
            StripeChoice::Auto => 1,
            StripeChoice::Fixed(n) => n,
        }
    }

    /// The most stripes this choice cuts any blob into.
    pub fn most(self) -> usize {
        match self {
            StripeChoice::Auto => STRIPES_AT_SCALE,
            StripeChoice::Fixed(n) => n,
        }
    }
}

impl std::fmt::Display for StripeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StripeChoice::Auto => f.write_str("auto"),
            StripeChoice::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for StripeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<usize>() {
            _ if s == "auto" => Ok(StripeChoice::Auto),
            Ok(n @ 1..=MAX_STRIPES) => Ok(StripeChoice::Fixed(n)),
            _ => Err(format!(
                "{s:?} is not a stripe count: give auto (one chain below {STRIPED_FROM_NODES} \
                 nodes, {STRIPES_AT_SCALE} stripes from there) or 1 (one stream) to {MAX_STRIPES}"
            )),
        }
    }
}

/// The least `--upload-cap` default: one stream's children under `--fanout`, plus room for a
/// late asker or two.
pub const DEFAULT_UPLOAD_CAP: usize = 4;

/// The uploads a node allows at once for a blob cut into `stripes` stripes, unless
/// `--upload-cap` says otherwise: it serves its home stripe to up to `stripes` children, and
/// two more askers (a stranded child, a late one) find room.
pub fn upload_cap_for(stripes: usize) -> usize {
    (stripes + 2).max(DEFAULT_UPLOAD_CAP)
}

/// A blob of `size` bytes cut into `count × rounds` pieces of nearly equal length; stripe `j`
/// is pieces `j`, `j + count`, `j + 2·count`, … in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripes {
    size: u64,
    count: usize,
    rounds: usize,
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
        // One stream needs no pieces: it fills the prefix in order anyway.
        let rounds = match count {
            1 => 1,
            n => (size / (n as u64 * MIN_PIECE)).clamp(1, MAX_ROUNDS as u64) as usize,
        };
        Self {
            size,
            count,
            rounds,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Pieces in the blob, `count × rounds`.
    pub fn pieces(&self) -> usize {
        self.count * self.rounds
    }

    fn bound(&self, p: usize) -> u64 {
        (self.size as u128 * p as u128 / self.pieces() as u128) as u64
    }

    /// Piece `p`'s bytes, `start..end`.
    pub fn piece(&self, p: usize) -> std::ops::Range<u64> {
        self.bound(p)..self.bound(p + 1)
    }

    /// The stripe piece `p` belongs to.
    pub fn stripe_of(&self, p: usize) -> usize {
        p % self.count
    }

    /// Stripe `j`'s pieces, in the order its stream sends them.
    pub fn pieces_of(&self, j: usize) -> impl Iterator<Item = std::ops::Range<u64>> + '_ {
        (0..self.rounds).map(move |i| self.piece(i * self.count + j))
    }

    /// Bytes in stripe `j`.
    pub fn len(&self, j: usize) -> u64 {
        self.pieces_of(j).map(|r| r.end - r.start).sum()
    }

    /// The piece holding byte `pos` (the last one for `pos` at or past the end).
    pub fn piece_at(&self, pos: u64) -> usize {
        let n = self.pieces();
        let mut p = ((pos as u128 * n as u128) / self.size.max(1) as u128) as usize;
        p = p.min(n - 1);
        while p + 1 < n && self.bound(p + 1) <= pos {
            p += 1;
        }
        while p > 0 && self.bound(p) > pos {
            p -= 1;
        }
        p
    }

    /// What stripe `j` still lacks of its current piece when it has its first `have` bytes:
    /// the next range to ask a source for (empty when the stripe is complete).
    pub fn next_run(&self, j: usize, have: u64) -> std::ops::Range<u64> {
        let mut before = 0;
        for r in self.pieces_of(j) {
            let len = r.end - r.start;
            if have < before + len {
                return r.start + (have - before)..r.end;
            }
            before += len;
        }
        self.size..self.size
    }

    /// How many of piece `p`'s bytes are written when its stripe has its first `written` bytes.
    fn piece_written(&self, p: usize, written: u64) -> u64 {
        let j = self.stripe_of(p);
        let before: u64 = (0..p / self.count)
            .map(|i| {
                let r = self.piece(i * self.count + j);
                r.end - r.start
            })
            .sum();
        let r = self.piece(p);
        written.saturating_sub(before).min(r.end - r.start)
    }

    /// Where the bytes readable from `pos` end, when stripe `j` has its first `written[j]`
    /// bytes (a reader crosses into the next piece only where that one has its start).
    pub fn readable_to(&self, written: &[u64], pos: u64) -> u64 {
        let mut p = self.piece_at(pos);
        loop {
            let r = self.piece(p);
            let got = self.piece_written(p, written.get(self.stripe_of(p)).copied().unwrap_or(0));
            if got < r.end - r.start || p + 1 == self.pieces() {
                return r.start + got;
            }
            p += 1;
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
        assert_eq!(s.pieces(), 8, "too short for more than one piece a stripe");
        let mut next = 0;
        for p in 0..s.pieces() {
            let r = s.piece(p);
            assert_eq!(r.start, next);
            assert_eq!(s.piece_at(r.start), p);
            assert_eq!(s.piece_at(r.end - 1), p);
            next = r.end;
        }
        assert_eq!(next, s.size());
        assert!((0..8).all(|j| s.len(j) >= MIN_STRIPE));
        assert_eq!((0..8).map(|j| s.len(j)).sum::<u64>(), s.size());
        assert_eq!(Stripes::new(3 * MIN_STRIPE, 8, 100).count(), 3);
        assert_eq!(Stripes::new(100, 8, 100).count(), 1);
        assert_eq!(Stripes::new(0, 8, 100).count(), 1);
        assert_eq!(Stripes::new(100 * MIN_STRIPE, 0, 100).count(), 1);
        // No more stripes than nodes: each node roots at most one.
        assert_eq!(Stripes::new(100 * MIN_STRIPE, 8, 5).count(), 5);
        assert_eq!(Stripes::new(100 * MIN_STRIPE, 8, 0).count(), 1);
        // One stream is one piece, however big.
        assert_eq!(Stripes::new(1 << 30, 1, 100).pieces(), 1);
    }

    #[test]
    fn a_big_blobs_stripes_interleave_in_pieces_so_the_prefix_grows_with_all_of_them() {
        let s = Stripes::new(256 * MIN_STRIPE, 8, 100);
        assert_eq!(s.pieces(), 8 * MAX_ROUNDS);
        assert!(s.piece(0).end - s.piece(0).start >= MIN_PIECE);
        // Stripe 3 is pieces 3, 11, 19, …: one piece in every round.
        let starts: Vec<u64> = s.pieces_of(3).map(|r| r.start).collect();
        assert_eq!(starts.len(), MAX_ROUNDS);
        assert!(starts
            .iter()
            .enumerate()
            .all(|(i, &a)| s.piece_at(a) == 8 * i + 3));
        assert!((0..s.pieces()).all(|p| s.stripe_of(s.piece_at(s.piece(p).start)) == p % 8));
        // A 64 MiB blob in 8 stripes: 1 MiB pieces, 8 a stripe.
        assert_eq!(Stripes::new(64 * MIN_STRIPE, 8, 64).pieces(), 64);
    }

    #[test]
    fn auto_chains_a_small_fleet_and_stripes_a_large_one() {
        let auto: StripeChoice = "auto".parse().unwrap();
        assert_eq!(auto, StripeChoice::default());
        assert_eq!(auto.wanted(64), 1);
        assert_eq!(auto.wanted(STRIPED_FROM_NODES - 1), 1);
        assert_eq!(auto.wanted(STRIPED_FROM_NODES), STRIPES_AT_SCALE);
        assert_eq!(auto.most(), STRIPES_AT_SCALE);
        assert_eq!("4".parse(), Ok(StripeChoice::Fixed(4)));
        assert_eq!(StripeChoice::Fixed(4).wanted(10_000), 4);
        for bad in ["0", "65", "eight", ""] {
            let e = bad.parse::<StripeChoice>().unwrap_err();
            assert!(e.contains("give auto") && e.contains(bad), "{e}");
        }
        for c in [auto, StripeChoice::Fixed(8)] {
            assert_eq!(c.to_string().parse(), Ok(c), "{c} parses back");
        }
    }

    #[test]
    fn a_stripe_asks_for_the_rest_of_its_current_piece() {
        let m = MIN_PIECE;
        let s = Stripes::new(8 * m, 2, 2);
        assert_eq!(s.pieces(), 8);
        assert_eq!(s.next_run(0, 0), 0..m);
        assert_eq!(s.next_run(1, 0), m..2 * m);
        assert_eq!(s.next_run(0, 2 * m + 5), 4 * m + 5..5 * m);
        assert_eq!(s.next_run(1, 4 * m - 1), 8 * m - 1..8 * m);
        assert!(s.next_run(1, 4 * m).is_empty(), "complete");
        assert_eq!(Stripes::new(8 * m, 1, 2).next_run(0, 7), 7..8 * m);
    }

    #[test]
    fn a_reader_crosses_into_the_next_piece_only_as_far_as_it_was_written() {
        let m = MIN_STRIPE;
        let s = Stripes::new(4 * m, 4, 4);
        assert_eq!(s.pieces(), 4);
        // Stripe 0 complete, stripe 1 has 10 bytes, stripe 2 is ahead of stripe 1.
        let written = [m, 10, m / 2, 0];
        assert_eq!(s.readable_to(&written, 0), m + 10);
        assert_eq!(s.readable_to(&written, m + 10), m + 10);
        assert_eq!(s.readable_to(&written, 2 * m), 2 * m + m / 2);
        assert_eq!(s.readable_to(&written, 3 * m), 3 * m);
        assert_eq!(s.readable_to(&[m; 4], 0), 4 * m);
        // Interleaved: stripe 0 is pieces 0, 2, 4, 6 and stripe 1 pieces 1, 3, 5, 7.
        let s = Stripes::new(8 * MIN_PIECE, 2, 2);
        let p = MIN_PIECE;
        assert_eq!(s.readable_to(&[2 * p + 5, p], 0), 3 * p);
        assert_eq!(s.readable_to(&[2 * p + 5, 2 * p], 0), 4 * p + 5);
        assert_eq!(s.readable_to(&[4 * p, 4 * p], 5 * p), 8 * p);
        // One stripe: the plain prefix.
        assert_eq!(Stripes::new(100, 8, 8).readable_to(&[42], 7), 42);
    }
}
