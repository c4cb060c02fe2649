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

/// Node ids ordered by weight for `digest`, highest first (ties broken by id).
pub fn rank<'a>(digest: &Digest, node_ids: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut weighted: Vec<(u64, &str)> = node_ids
        .into_iter()
        .map(|id| (weight(digest, id), id))
        .collect();
    weighted.sort_unstable_by(|a, b| b.cmp(a));
    weighted.dedup_by(|a, b| a.1 == b.1);
    weighted.into_iter().map(|(_, id)| id).collect()
}

/// The parent of rank `i` in the k-ary tree (rank 0 is the root and pulls from the registry).
pub fn parent(i: usize, fanout: usize) -> Option<usize> {
    (i > 0).then(|| (i - 1) / fanout.max(1))
}

/// The earlier ranks node `i` may pull from, best first: its ancestors nearest first (a dead
/// parent's own parent has the most bytes and just lost a child), then the other earlier ranks,
/// nearest first. Every entry is earlier than `i`, so pulls never form a cycle.
pub fn upstream(i: usize, fanout: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(i);
    let mut at = i;
    while let Some(p) = parent(at, fanout) {
        order.push(p);
        at = p;
    }
    for r in (0..i).rev() {
        if !order.contains(&r) {
            order.push(r);
        }
    }
    order
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
    fn tree_parents_and_fallbacks_are_earlier_ranks() {
        assert_eq!(parent(0, 2), None);
        assert_eq!(parent(1, 2), Some(0));
        assert_eq!(parent(4, 2), Some(1));
        assert_eq!(parent(5, 1), Some(4));
        assert_eq!(upstream(4, 2), vec![1, 0, 3, 2]);
        assert_eq!(upstream(3, 1), vec![2, 1, 0]);
        assert!(upstream(0, 2).is_empty());
        for i in 0..50 {
            assert!(upstream(i, 3).iter().all(|&r| r < i));
            assert_eq!(upstream(i, 3).len(), i);
        }
    }
}
