//! Rendezvous (highest random weight) ranking of nodes per digest and the k-ary tree over it: every node computes the same order, no coordinator.
//! It is pure arithmetic; it must not do I/O or know whether a node is alive.

use classcache_core::digest::Digest;
use sha2::{Digest as _, Sha256};

/// The node's weight for one digest: the first 8 bytes of sha256(digest, 0, node id).
pub fn weight(digest: &Digest, node_id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(digest.hex().as_bytes());
    h.update([0u8]);
    h.update(node_id.as_bytes());
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// Node ids ordered by weight for `digest`, highest first (ties broken by id): the
/// distribution order when zones are ignored.
pub fn rank<'a>(digest: &Digest, node_ids: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let members = node_ids.into_iter().map(|id| Member { id, zone: None });
    distribution(digest, members, 1, false).order
}

/// A node as the distribution order sees it: its name and, if known, its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub id: &'a str,
    pub zone: Option<&'a str>,
}

/// The order in which a blob flows through the nodes and the tree over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution<'a> {
    /// Node ids, the root (which pulls from the registry) first.
    pub order: Vec<&'a str>,
    pub tree: Tree,
}

impl Distribution<'_> {
    /// The order of stripe `j` of `stripes`, as positions of [`Distribution::order`]: inside
    /// each zone block, first the nodes whose home stripe is `j` (position in the block modulo
    /// `stripes`), then the others, each in order. Over this order the same [`Tree`] with
    /// fanout `stripes` puts the home nodes in the interior: every node forwards in its home
    /// stripe only, so each uploads about one copy in all while receiving every stripe from a
    /// different parent, and the depth is log_stripes of the nodes, not their number.
    pub fn stripe_order(&self, j: usize, stripes: usize) -> Vec<usize> {
        let stripes = stripes.max(1);
        let mut order = Vec::with_capacity(self.order.len());
        let ends = self.tree.block_starts[1..]
            .iter()
            .copied()
            .chain([self.order.len()]);
        for (start, end) in self.tree.block_starts.iter().copied().zip(ends) {
            let home = (start..end).filter(|p| (p - start) % stripes == j % stripes);
            // The others from the last layer of their own stripes first (leaves there, with
            // upload to spare), and within a layer rotated by stripe, so the few extra children
            // of a block that does not divide evenly land on a different node in each stripe.
            let mut rest: Vec<usize> = (start..end)
                .filter(|p| (p - start) % stripes != j % stripes)
                .collect();
            let key = |p: &usize| {
                let local = p - start;
                let turn = (local + stripes - j % stripes - 1) % stripes;
                (std::cmp::Reverse(local / stripes), turn)
            };
            rest.sort_by_key(key);
            order.extend(home.chain(rest));
        }
        order
    }
}

/// The distribution for `digest`: nodes by rendezvous weight. Zone-aware, the zones come in the
/// order of their best node and each zone's nodes stay together in weight order, so the bytes
/// enter each zone once and then stay in it; a node with no zone counts as a zone of its own
/// kind. Every node computes the same distribution from the same members.
pub fn distribution<'a>(
    digest: &Digest,
    members: impl IntoIterator<Item = Member<'a>>,
    fanout: usize,
    zone_aware: bool,
) -> Distribution<'a> {
    let mut weighted: Vec<(u64, Member<'a>)> = members
        .into_iter()
        .map(|m| (weight(digest, m.id), m))
        .collect();
    weighted.sort_unstable_by(|a, b| (b.0, b.1.id).cmp(&(a.0, a.1.id)));
    weighted.dedup_by(|a, b| a.1.id == b.1.id);
    if !zone_aware {
        return Distribution {
            order: weighted.into_iter().map(|(_, m)| m.id).collect(),
            tree: Tree::flat(fanout),
        };
    }
    let mut zones: Vec<Option<&str>> = Vec::new();
    for (_, m) in &weighted {
        if !zones.contains(&m.zone) {
            zones.push(m.zone);
        }
    }
    // Stable: weight order within a zone survives.
    weighted.sort_by_key(|(_, m)| zones.iter().position(|z| *z == m.zone));
    let mut starts = Vec::with_capacity(zones.len());
    for (i, (_, m)) in weighted.iter().enumerate() {
        if i == 0 || weighted[i - 1].1.zone != m.zone {
            starts.push(i);
        }
    }
    Distribution {
        order: weighted.into_iter().map(|(_, m)| m.id).collect(),
        tree: Tree {
            fanout: fanout.max(1),
            block_starts: starts,
        },
    }
}

/// A tree over positions of an order: a k-ary tree inside each block of positions (a zone),
/// each block's first node hanging off the position just before it (the previous block's last
/// node, a leaf there, so no node uploads more than `fanout` copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    fanout: usize,
    /// Where each block starts, ascending, the first at 0.
    block_starts: Vec<usize>,
}

impl Tree {
    /// One block: the plain k-ary tree over the order.
    pub fn flat(fanout: usize) -> Self {
        Self {
            fanout: fanout.max(1),
            block_starts: vec![0],
        }
    }

    /// The parent of position `i` (position 0 is the root and pulls from the registry).
    pub fn parent(&self, i: usize) -> Option<usize> {
        if i == 0 {
            return None;
        }
        let start = self.block_start(i);
        Some(if i == start {
            i - 1
        } else {
            start + (i - start - 1) / self.fanout
        })
    }

    /// The earlier positions node `i` may pull from, best first: its parent; then, when the
    /// parent had siblings, one of them picked by `i`'s own place among its siblings, so the
    /// children of a dead parent spread over the parent's level instead of all landing on the
    /// grandparent (which got one free slot, not `fanout`); then its other ancestors nearest
    /// first; then the other earlier positions, nearest first (same zone first). Every entry
    /// is earlier than `i`, so pulls never form a cycle.
    pub fn upstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut preferred: Vec<usize> =
            std::iter::successors(self.parent(i), |&p| self.parent(p)).collect();
        if let Some(adopter) = self.adopter(i) {
            preferred.insert(1, adopter);
        }
        let mut skip = preferred.clone();
        skip.sort_unstable_by(|a, b| b.cmp(a));
        // `skip` decreases, so one pass from i-1 down leaves them out in order.
        let mut next_skip = 0;
        preferred.into_iter().chain((0..i).rev().filter(move |r| {
            if skip.get(next_skip) == Some(r) {
                next_skip += 1;
                false
            } else {
                true
            }
        }))
    }

    /// The sibling of `i`'s parent that `i` falls back to first, if the parent has siblings:
    /// the one `c` places after the parent, `c` being `i`'s place among its own siblings (the
    /// first child goes to the grandparent, which just got the dead parent's slot back).
    fn adopter(&self, i: usize) -> Option<usize> {
        let k = self.fanout;
        let p = self.parent(i)?;
        let start = self.block_start(i);
        if k < 2 || i == start || p == start {
            return None;
        }
        let c = (i - start - 1) % k;
        if c == 0 {
            return None;
        }
        let g = self.parent(p)?;
        let first = start + (g - start) * k + 1;
        let sibling = first + ((p - first) + c) % k;
        (sibling < i && sibling != p).then_some(sibling)
    }

    fn block_start(&self, i: usize) -> usize {
        self.block_starts[self.block_starts.partition_point(|&s| s <= i) - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_computes_the_same_order_whatever_the_input_order() {
        let d = Digest::of(b"layer");
        let ids: Vec<String> = (0..20).map(|i| format!("node-{i}")).collect();
        let forward = rank(&d, ids.iter().map(String::as_str));
        let backward = rank(&d, ids.iter().rev().map(String::as_str));
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), 20);
    }

    #[test]
    fn removing_a_node_keeps_the_others_in_order() {
        let d = Digest::of(b"layer");
        let ids: Vec<String> = (0..20).map(|i| format!("node-{i}")).collect();
        let all = rank(&d, ids.iter().map(String::as_str));
        let gone = all[3];
        let rest = rank(&d, ids.iter().map(String::as_str).filter(|id| *id != gone));
        let expected: Vec<&str> = all.iter().copied().filter(|id| *id != gone).collect();
        assert_eq!(rest, expected);
    }

    #[test]
    fn roots_spread_over_nodes_across_digests() {
        let ids: Vec<String> = (0..8).map(|i| format!("node-{i}")).collect();
        let mut roots = std::collections::HashSet::new();
        for n in 0..64u32 {
            let d = Digest::of(&n.to_le_bytes());
            roots.insert(rank(&d, ids.iter().map(String::as_str))[0]);
        }
        assert!(roots.len() >= 6, "only {} distinct roots", roots.len());
    }

    #[test]
    fn tree_parents_and_fallbacks_are_earlier_positions() {
        let two = Tree::flat(2);
        assert_eq!(two.parent(0), None);
        assert_eq!(two.parent(1), Some(0));
        assert_eq!(two.parent(4), Some(1));
        assert_eq!(Tree::flat(1).parent(5), Some(4));
        // Node 4 is the second child of 1: after its parent, 1's sibling 2, then the root.
        assert_eq!(two.upstream(4).collect::<Vec<_>>(), vec![1, 2, 0, 3]);
        assert_eq!(two.upstream(3).collect::<Vec<_>>(), vec![1, 0, 2]);
        assert_eq!(Tree::flat(1).upstream(3).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert_eq!(two.upstream(0).count(), 0);
        let three = Tree::flat(3);
        for i in 0..50 {
            assert!(three.upstream(i).all(|r| r < i));
            assert_eq!(three.upstream(i).count(), i);
        }
    }

    fn members<'a>(ids: &'a [String], zones: &'a [&'a str]) -> Vec<Member<'a>> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Member {
                id,
                zone: Some(zones[i % zones.len()]),
            })
            .collect()
    }

    #[test]
    fn zone_aware_order_keeps_each_zone_together_and_crosses_into_it_once() {
        let d = Digest::of(b"layer");
        let ids: Vec<String> = (0..60).map(|i| format!("node-{i}")).collect();
        let zones = ["a", "b", "c"];
        let zone_of = |id: &str| zones[ids.iter().position(|n| n == id).unwrap() % 3];
        let flat = distribution(&d, members(&ids, &zones), 2, false);
        assert_eq!(flat.order, rank(&d, ids.iter().map(String::as_str)));
        for fanout in [1, 2, 4] {
            let dist = distribution(&d, members(&ids, &zones), fanout, true);
            assert_eq!(dist.order[0], flat.order[0], "the same root");
            let crossings = (1..dist.order.len())
                .filter(|&i| {
                    let p = dist.tree.parent(i).unwrap();
                    zone_of(dist.order[i]) != zone_of(dist.order[p])
                })
                .count();
            assert_eq!(crossings, 2, "fanout {fanout}: one entry per other zone");
            let mut children = vec![0; dist.order.len()];
            for i in 1..dist.order.len() {
                children[dist.tree.parent(i).unwrap()] += 1;
                assert!(dist.tree.upstream(i).all(|r| r < i));
            }
            assert!(
                children.iter().all(|&c| c <= fanout),
                "fanout {fanout}: {children:?}"
            );
        }
    }
}
