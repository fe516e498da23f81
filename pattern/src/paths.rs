//! The trie of field paths the patterns reference.
//!
//! The event scanner walks this trie while it walks the event: a key that leads nowhere in
//! the trie has its whole value skipped without being looked at. Edges are the dot-separated
//! segments of a path, and event keys are split at dots the same way, so a pattern key
//! `"detail.amount"`, a nested pattern `{"detail": {"amount": ...}}` and an event key
//! `"detail.amount"` all meet at the same node (event-ruler matches flattened dotted names).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(crate) const NONE: u32 = u32::MAX;

/// FxHash (rustc's hasher): field names and values are short, and a cryptographic hasher
/// would cost more than the rest of a lookup. Patterns are written by the operator, events
/// cannot add keys to these maps, so HashDoS is not a concern.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut b = bytes;
        while b.len() >= 8 {
            let w = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
            b = &b[8..];
        }
        if b.len() >= 4 {
            let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
            b = &b[4..];
        }
        for &c in b {
            h = (h.rotate_left(5) ^ c as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Up to this many children a node keeps a list (a few byte compares beat hashing).
const FEW: usize = 8;

/// The first 8 bytes of a key and its length packed in a word: most keys are told apart by
/// one integer compare before any byte comparison.
#[inline]
fn tag(k: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = k.len().min(7);
    a[..n].copy_from_slice(&k[..n]);
    a[7] = k.len().min(255) as u8;
    u64::from_le_bytes(a)
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    few: Vec<(u64, Box<[u8]>, u32)>,
    many: Option<FxMap<Box<[u8]>, u32>>,
    /// The leaf path id if a pattern tests values at this path, else NONE.
    pub leaf: u32,
}

impl Node {
    #[inline]
    pub(crate) fn has_children(&self) -> bool {
        !self.few.is_empty() || self.many.is_some()
    }

    #[inline]
    fn child(&self, seg: &[u8]) -> Option<u32> {
        if let Some(m) = &self.many {
            return m.get(seg).copied();
        }
        self.few
            .iter()
            .find(|(_, k, _)| k.len() == seg.len() && k.first() == seg.first() && **k == *seg)
            .map(|(_, _, n)| *n)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PathTrie {
    pub nodes: Vec<Node>,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie {
            nodes: vec![Node {
                leaf: NONE,
                ..Node::default()
            }],
        }
    }
}

impl PathTrie {
    pub(crate) const ROOT: u32 = 0;

    /// Adds a dotted path, marking its end as leaf `id` (keeps an existing id).
    pub(crate) fn insert(&mut self, path: &str, id: u32) -> u32 {
        let mut n = Self::ROOT;
        for seg in path.as_bytes().split(|&c| c == b'.') {
            n = match self.nodes[n as usize].child(seg) {
                Some(c) => c,
                None => {
                    let c = self.nodes.len() as u32;
                    self.nodes.push(Node {
                        leaf: NONE,
                        ..Node::default()
                    });
                    let node = &mut self.nodes[n as usize];
                    if let Some(m) = &mut node.many {
                        m.insert(seg.into(), c);
                    } else {
                        node.few.push((tag(seg), seg.into(), c));
                        if node.few.len() > FEW {
                            node.many = Some(node.few.drain(..).map(|(_, k, n)| (k, n)).collect());
                        }
                    }
                    c
                }
            };
        }
        let node = &mut self.nodes[n as usize];
        if node.leaf == NONE {
            node.leaf = id;
        }
        node.leaf
    }

    /// Follows an event key (already unescaped) from `node`, splitting it at dots;
    /// `dotted` says whether the key contains a '.' (the scanner finds out for free).
    #[inline]
    pub(crate) fn step(&self, node: u32, key: &[u8], dotted: bool) -> Option<u32> {
        // Segments never contain dots, so a direct hit is final; only a miss on a key that
        // contains a dot needs splitting.
        if let Some(c) = self.nodes[node as usize].child(key) {
            return Some(c);
        }
        if !dotted {
            return None;
        }
        let mut n = node;
        for seg in key.split(|&c| c == b'.') {
            n = self.nodes[n as usize].child(seg)?;
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_meet() {
        let mut t = PathTrie::default();
        assert_eq!(t.insert("detail.amount", 0), 0);
        let a = t.step(PathTrie::ROOT, b"detail.amount", true).unwrap();
        let d = t.step(PathTrie::ROOT, b"detail", false).unwrap();
        assert_eq!(t.step(d, b"amount", false), Some(a));
        assert_eq!(t.step(PathTrie::ROOT, b"detail.amount", true), Some(a));
        assert_eq!(t.nodes[a as usize].leaf, 0);
        assert_eq!(t.step(PathTrie::ROOT, b"nope", false), None);
        for i in 0..20 {
            t.insert(&format!("k{i}"), i + 1);
        }
        assert!(t.step(PathTrie::ROOT, b"k19", false).is_some());
        assert_eq!(t.step(PathTrie::ROOT, b"detail.amount", true), Some(a));
    }
}
