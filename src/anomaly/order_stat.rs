//! An order-statistic multiset of `f64`: insert, remove and k-th smallest in O(log n).
//!
//! A treap (binary search tree with random heap priorities, so expected depth O(log n))
//! whose nodes carry subtree sizes. Nodes live in an arena with a free list, so once the
//! window is full each insert reuses the slot its removed predecessor freed and nothing is
//! allocated. Keys are `(value, seq)`: the caller's sequence number makes equal values
//! distinct, so removing one of several equal samples removes exactly that one.

use std::cmp::Ordering;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    key: f64,
    seq: u64,
    prio: u32,
    left: u32,
    right: u32,
    size: u32,
}

#[derive(Debug, Clone)]
pub struct OrderStat {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    rng: u64,
}

fn cmp(a: (f64, u64), b: (f64, u64)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

impl OrderStat {
    /// An empty set with room for `capacity` elements before it allocates.
    pub fn with_capacity(capacity: usize) -> OrderStat {
        OrderStat {
            nodes: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            root: NIL,
            // Fixed seed: the shape (and so the timing) is reproducible run to run; the
            // keys come from sensors, not from an adversary choosing them against it.
            rng: 0x5EED_7EAB,
        }
    }

    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize)
    }

    fn size(&self, i: u32) -> u32 {
        self.node(i).map_or(0, |n| n.size)
    }

    fn fix(&mut self, i: u32) {
        let (l, r) = match self.node(i) {
            Some(n) => (n.left, n.right),
            None => return,
        };
        let size = 1 + self.size(l) + self.size(r);
        if let Some(n) = self.nodes.get_mut(i as usize) {
            n.size = size;
        }
    }

    fn next_prio(&mut self) -> u32 {
        // splitmix64 over a counter: cheap and well mixed. Not xorshift: a benchmark fed
        // xorshift noise from the same seed once made priorities track the keys, and the
        // treap degenerated into a list.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    /// Splits `t` into keys `< key` and keys `>= key`.
    fn split(&mut self, t: u32, key: (f64, u64)) -> (u32, u32) {
        let Some(n) = self.node(t).copied() else {
            return (NIL, NIL);
        };
        if cmp((n.key, n.seq), key) == Ordering::Less {
            let (a, b) = self.split(n.right, key);
            if let Some(m) = self.nodes.get_mut(t as usize) {
                m.right = a;
            }
            self.fix(t);
            (t, b)
        } else {
            let (a, b) = self.split(n.left, key);
            if let Some(m) = self.nodes.get_mut(t as usize) {
                m.left = b;
            }
            self.fix(t);
            (a, t)
        }
    }

    /// Joins two treaps where every key of `a` is below every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        let (Some(na), Some(nb)) = (self.node(a).copied(), self.node(b).copied()) else {
            return if a == NIL { b } else { a };
        };
        if na.prio > nb.prio {
            let r = self.merge(na.right, b);
            if let Some(m) = self.nodes.get_mut(a as usize) {
                m.right = r;
            }
            self.fix(a);
            a
        } else {
            let l = self.merge(a, nb.left);
            if let Some(m) = self.nodes.get_mut(b as usize) {
                m.left = l;
            }
            self.fix(b);
            b
        }
    }

    pub fn insert(&mut self, key: f64, seq: u64) {
        let node = Node {
            key,
            seq,
            prio: self.next_prio(),
            left: NIL,
            right: NIL,
            size: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.nodes.get_mut(id as usize) {
                    *slot = node;
                }
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (l, r) = self.split(self.root, (key, seq));
        let l = self.merge(l, id);
        self.root = self.merge(l, r);
    }

    /// Removes the element `(key, seq)`; `false` if it is not there.
    pub fn remove(&mut self, key: f64, seq: u64) -> bool {
        let (l, r) = self.split(self.root, (key, seq));
        // The smallest key of `r` is ours if it is present at all.
        let mut first = r;
        while let Some(n) = self.node(first) {
            if n.left == NIL {
                break;
            }
            first = n.left;
        }
        let found = self
            .node(first)
            .is_some_and(|n| cmp((n.key, n.seq), (key, seq)) == Ordering::Equal);
        if !found {
            self.root = self.merge(l, r);
            return false;
        }
        let (_, rest) = self.split(r, (key, seq.saturating_add(1)));
        self.free.push(first);
        self.root = self.merge(l, rest);
        true
    }

    /// The k-th smallest (0-based).
    pub fn select(&self, mut k: usize) -> Option<f64> {
        let mut t = self.root;
        while let Some(n) = self.node(t) {
            let left = self.size(n.left) as usize;
            match k.cmp(&left) {
                Ordering::Less => t = n.left,
                Ordering::Equal => return Some(n.key),
                Ordering::Greater => {
                    k -= left + 1;
                    t = n.right;
                }
            }
        }
        None
    }

    /// Arena slots ever allocated (tests check that a full window stops growing).
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_insert_remove_against_sorted_vec() {
        let mut t = OrderStat::with_capacity(8);
        let mut reference: Vec<(f64, u64)> = Vec::new();
        let mut x = 12345u64;
        for seq in 0..2000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Few distinct values, so duplicates are common.
            let v = ((x >> 33) % 17) as f64;
            t.insert(v, seq);
            reference.push((v, seq));
            if seq % 3 == 0 {
                let (rv, rs) = reference.remove(((x >> 20) as usize) % reference.len());
                assert!(t.remove(rv, rs));
            }
            let mut sorted: Vec<f64> = reference.iter().map(|p| p.0).collect();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(t.len(), sorted.len());
            for probe in [0, sorted.len() / 2, sorted.len().saturating_sub(1)] {
                assert_eq!(t.select(probe), sorted.get(probe).copied());
            }
        }
        assert!(!t.remove(99.0, 0));
        assert_eq!(t.select(t.len()), None);
    }

    #[test]
    fn reuses_freed_slots() {
        let mut t = OrderStat::with_capacity(4);
        for seq in 0..4 {
            t.insert(seq as f64, seq);
        }
        for seq in 4..1000u64 {
            assert!(t.remove((seq - 4) as f64, seq - 4));
            t.insert(seq as f64, seq);
        }
        assert_eq!(t.allocated(), 4);
        assert_eq!(t.select(0), Some(996.0));
    }
}
