//! Incremental Merkle-Patricia tries stored node by node under their path.
//!
//! Every node of a trie (the account trie, or one account's storage trie) is kept under
//! (owner, path from the root), in its standard RLP encoding; a branch or extension holds
//! its children's references (hash, or the child itself when shorter than 32 bytes), so a
//! block re-encodes and re-hashes only the nodes on the paths it changed: O(changes × depth)
//! instead of O(entries). Branch nodes never move; a leaf or extension moves up when a
//! branch above it loses all its other children, and the old position is deleted, so the
//! table holds exactly the current trie.
//!
//! The full rebuild with `alloy_trie::HashBuilder` stays as the test oracle.

use alloy_primitives::{keccak256, Bytes, B256};
use alloy_rlp::{Decodable, Encodable};
use alloy_trie::nodes::{BranchNode, ExtensionNode, LeafNode, RlpNode, TrieNode};
use alloy_trie::{Nibbles, TrieMask};
use std::collections::BTreeMap;
use trellis_storage::{trie_node_key, StateView, StoreError, EMPTY_ROOT};

/// Where committed trie nodes are read from.
pub trait NodeSource {
    fn trie_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

impl NodeSource for StateView {
    fn trie_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        StateView::trie_node(self, key)
    }
}

/// No committed nodes (genesis).
pub struct Empty;

impl NodeSource for Empty {
    fn trie_node(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
}

/// Node writes pending on top of a [`NodeSource`] (`None` removes), keyed by `trie_node_key`.
pub type NodeWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

fn corrupt(reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "trie_nodes",
        reason: reason.to_string(),
    }
}

/// One trie's nodes, read through the pending writes.
pub struct Trie<'a, S: NodeSource + ?Sized> {
    source: &'a S,
    writes: &'a mut NodeWrites,
    owner: B256,
}

/// A node now at some path and its reference from the parent.
type Placed = (TrieNode, RlpNode);

impl<'a, S: NodeSource + ?Sized> Trie<'a, S> {
    pub fn new(source: &'a S, writes: &'a mut NodeWrites, owner: B256) -> Self {
        Trie {
            source,
            writes,
            owner,
        }
    }

    fn key(&self, path: &Nibbles) -> Vec<u8> {
        trie_node_key(&self.owner, path.iter())
    }

    fn load(&self, path: &Nibbles) -> Result<Option<TrieNode>, StoreError> {
        let key = self.key(path);
        let bytes = match self.writes.get(&key) {
            Some(pending) => pending.clone(),
            None => self.source.trie_node(&key)?,
        };
        bytes
            .map(|b| TrieNode::decode(&mut b.as_slice()).map_err(corrupt))
            .transpose()
    }

    fn put(&mut self, path: &Nibbles, node: TrieNode) -> Placed {
        let mut rlp = Vec::new();
        let reference = node.rlp(&mut rlp);
        let key = self.key(path);
        self.writes.insert(key, Some(rlp));
        (node, reference)
    }

    fn delete(&mut self, path: &Nibbles) {
        let key = self.key(path);
        self.writes.insert(key, None);
    }

    /// The root hash after all pending writes.
    pub fn root(&self) -> Result<B256, StoreError> {
        Ok(match self.load(&Nibbles::new())? {
            None => EMPTY_ROOT,
            Some(node) => {
                let mut rlp = Vec::new();
                node.encode(&mut rlp);
                keccak256(rlp)
            }
        })
    }

    /// Applies `changes` (hashed key → new leaf value, `None` deletes) and returns the root.
    pub fn apply(&mut self, changes: &BTreeMap<B256, Option<Vec<u8>>>) -> Result<B256, StoreError> {
        if !changes.is_empty() {
            let changes: Vec<(Nibbles, Option<&[u8]>)> = changes
                .iter()
                .map(|(k, v)| (Nibbles::unpack(k), v.as_deref()))
                .collect();
            let root = Nibbles::new();
            let existing = self.load(&root)?;
            self.update(&root, existing, &changes)?;
        }
        self.root()
    }

    /// Updates the subtrie at `path` (currently `node`) with `changes`, all of whose keys start
    /// with `path`, sorted. Returns the node now at `path`.
    fn update(
        &mut self,
        path: &Nibbles,
        node: Option<TrieNode>,
        changes: &[(Nibbles, Option<&[u8]>)],
    ) -> Result<Option<Placed>, StoreError> {
        match node {
            None => {
                let leaves: Vec<(Nibbles, &[u8])> = changes
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| (*k, v)))
                    .collect();
                Ok(self.build(path, &leaves))
            }
            Some(TrieNode::Leaf(leaf)) => {
                let existing = path.join(&leaf.key);
                let mut leaves: Vec<(Nibbles, &[u8])> = Vec::with_capacity(changes.len() + 1);
                if changes.iter().all(|(k, _)| *k != existing) {
                    leaves.push((existing, leaf.value.as_slice()));
                }
                leaves.extend(changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))));
                leaves.sort_by_key(|(key, _)| *key);
                Ok(self.build(path, &leaves))
            }
            Some(TrieNode::Extension(ext)) => {
                let child_path = path.join(&ext.key);
                let diverge = changes
                    .iter()
                    .map(|(k, _)| k.slice(path.len()..).common_prefix_length(&ext.key))
                    .min()
                    .unwrap_or(ext.key.len());
                if diverge == ext.key.len() {
                    let child = self.load(&child_path)?;
                    if !matches!(child, Some(TrieNode::Branch(_))) {
                        return Err(corrupt("extension without a branch below it"));
                    }
                    let child = self.update(&child_path, child, changes)?;
                    return self.attach(path, &ext.key, child);
                }
                // Split: a branch where the changes leave the extension, holding the rest of
                // the extension as its one child for now; the branch update settles its shape.
                let branch_path = path.join(&ext.key.slice(..diverge));
                let nibble = ext.key.get_unchecked(diverge);
                let rest = ext.key.slice(diverge + 1..);
                let below = if rest.is_empty() {
                    ext.child
                } else {
                    let mut below_path = branch_path;
                    below_path.push(nibble);
                    self.put(
                        &below_path,
                        TrieNode::Extension(ExtensionNode::new(rest, ext.child)),
                    )
                    .1
                };
                let branch = BranchNode::new(vec![below], TrieMask::from_nibble(nibble));
                let branch = self.update_branch(&branch_path, branch, changes)?;
                if diverge == 0 {
                    Ok(branch)
                } else {
                    self.attach(path, &ext.key.slice(..diverge), branch)
                }
            }
            Some(TrieNode::Branch(branch)) => self.update_branch(path, branch, changes),
            Some(TrieNode::EmptyRoot) => Err(corrupt("empty node stored")),
        }
    }

    fn update_branch(
        &mut self,
        path: &Nibbles,
        branch: BranchNode,
        changes: &[(Nibbles, Option<&[u8]>)],
    ) -> Result<Option<Placed>, StoreError> {
        let mut children: [Option<RlpNode>; 16] = Default::default();
        for (nibble, child) in branch.as_ref().children() {
            children[nibble as usize] = child.cloned();
        }
        let mut updated: [Option<Option<TrieNode>>; 16] = Default::default();
        for (nibble, group) in by_nibble(changes, path.len()) {
            let mut child_path = *path;
            child_path.push(nibble);
            let existing = match children[nibble as usize] {
                Some(_) => Some(
                    self.load(&child_path)?
                        .ok_or_else(|| corrupt("branch child missing"))?,
                ),
                None => None,
            };
            let child = self.update(&child_path, existing, group)?;
            children[nibble as usize] = child.as_ref().map(|(_, r)| r.clone());
            updated[nibble as usize] = Some(child.map(|(n, _)| n));
        }

        let present: Vec<u8> = (0..16u8)
            .filter(|i| children[*i as usize].is_some())
            .collect();
        match present.as_slice() {
            [] => {
                self.delete(path);
                Ok(None)
            }
            [only] => {
                let mut child_path = *path;
                child_path.push(*only);
                let child = match updated[*only as usize].take() {
                    Some(node) => node,
                    None => self.load(&child_path)?,
                };
                let child = child.ok_or_else(|| corrupt("branch child missing"))?;
                let reference = children[*only as usize].take().unwrap_or_default();
                let prefix = Nibbles::from_nibbles_unchecked([*only]);
                self.attach(path, &prefix, Some((child, reference)))
            }
            _ => {
                let mut mask = TrieMask::default();
                let mut stack = Vec::with_capacity(present.len());
                for i in present {
                    mask.set_bit(i);
                    stack.extend(children[i as usize].take());
                }
                Ok(Some(
                    self.put(path, TrieNode::Branch(BranchNode::new(stack, mask))),
                ))
            }
        }
    }

    /// Places at `path` whatever now hangs at `path ++ prefix`: a leaf or extension moves up
    /// (absorbing the prefix), a branch gets an extension over it.
    fn attach(
        &mut self,
        path: &Nibbles,
        prefix: &Nibbles,
        child: Option<Placed>,
    ) -> Result<Option<Placed>, StoreError> {
        let child_path = path.join(prefix);
        Ok(match child {
            None => {
                self.delete(path);
                None
            }
            Some((TrieNode::Leaf(leaf), _)) => {
                self.delete(&child_path);
                Some(self.put(
                    path,
                    TrieNode::Leaf(LeafNode::new(prefix.join(&leaf.key), leaf.value)),
                ))
            }
            Some((TrieNode::Extension(ext), _)) => {
                self.delete(&child_path);
                Some(self.put(
                    path,
                    TrieNode::Extension(ExtensionNode::new(prefix.join(&ext.key), ext.child)),
                ))
            }
            Some((TrieNode::Branch(_), reference)) => Some(self.put(
                path,
                TrieNode::Extension(ExtensionNode::new(*prefix, reference)),
            )),
            Some((TrieNode::EmptyRoot, _)) => return Err(corrupt("empty node stored")),
        })
    }

    /// Writes a fresh subtrie at `path` holding `leaves` (sorted, keys starting with `path`).
    fn build(&mut self, path: &Nibbles, leaves: &[(Nibbles, &[u8])]) -> Option<Placed> {
        match leaves {
            [] => {
                self.delete(path);
                None
            }
            [(key, value)] => Some(self.put(
                path,
                TrieNode::Leaf(LeafNode::new(key.slice(path.len()..), value.to_vec())),
            )),
            [(first, _), .., (last, _)] => {
                let common = first.common_prefix_length(last);
                if common > path.len() {
                    let branch_path = first.slice(..common);
                    let (_, reference) = self.build_branch(&branch_path, leaves);
                    Some(self.put(
                        path,
                        TrieNode::Extension(ExtensionNode::new(
                            first.slice(path.len()..common),
                            reference,
                        )),
                    ))
                } else {
                    Some(self.build_branch(path, leaves))
                }
            }
        }
    }

    fn build_branch(&mut self, path: &Nibbles, leaves: &[(Nibbles, &[u8])]) -> Placed {
        let mut mask = TrieMask::default();
        let mut stack = Vec::new();
        for (nibble, group) in by_nibble(leaves, path.len()) {
            let mut child_path = *path;
            child_path.push(nibble);
            if let Some((_, reference)) = self.build(&child_path, group) {
                mask.set_bit(nibble);
                stack.push(reference);
            }
        }
        self.put(path, TrieNode::Branch(BranchNode::new(stack, mask)))
    }

    /// The nodes from the root towards `key` that a Merkle proof needs (inline nodes travel
    /// inside their parent), in the `eth_getProof` form.
    pub fn proof(&self, key: &B256) -> Result<Vec<Bytes>, StoreError> {
        let key = Nibbles::unpack(key);
        let mut path = Nibbles::new();
        let mut out = Vec::new();
        let mut embedded = false;
        while let Some(node) = self.load(&path)? {
            let mut rlp = Vec::new();
            node.encode(&mut rlp);
            if !embedded {
                out.push(Bytes::from(rlp));
            }
            let next = match node {
                TrieNode::Branch(branch) => {
                    let Some(nibble) = key.get(path.len()) else {
                        break;
                    };
                    let child = branch
                        .as_ref()
                        .children()
                        .find(|(i, _)| *i == nibble)
                        .and_then(|(_, c)| c.cloned());
                    match child {
                        Some(reference) => {
                            path.push(nibble);
                            Some(reference)
                        }
                        None => None,
                    }
                }
                TrieNode::Extension(ext) => {
                    let next = path.join(&ext.key);
                    if key.starts_with(&next) {
                        path = next;
                        Some(ext.child)
                    } else {
                        None
                    }
                }
                TrieNode::Leaf(_) | TrieNode::EmptyRoot => None,
            };
            match next {
                Some(reference) => embedded = !reference.is_hash(),
                None => break,
            }
        }
        Ok(out)
    }
}

/// Splits `items` (sorted by key) into runs sharing the nibble at `depth`.
fn by_nibble<T>(
    items: &[(Nibbles, T)],
    depth: usize,
) -> impl Iterator<Item = (u8, &[(Nibbles, T)])> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let (first, _) = rest.first()?;
        let nibble = first.get_unchecked(depth);
        let end = rest
            .iter()
            .position(|(k, _)| k.get_unchecked(depth) != nibble)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        rest = tail;
        Some((nibble, group))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::proof::verify_proof;
    use alloy_trie::HashBuilder;
    use rand::{Rng, SeedableRng};

    struct Committed(NodeWrites);

    impl NodeSource for Committed {
        fn trie_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.get(key).cloned().flatten())
        }
    }

    fn oracle(entries: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut builder = HashBuilder::default();
        for (k, v) in entries {
            builder.add_leaf(Nibbles::unpack(k), v);
        }
        builder.root()
    }

    /// Keys sharing long prefixes and short values make inline nodes and deep extensions,
    /// the shapes an incremental trie most easily gets wrong.
    fn random_key(rng: &mut impl Rng, clustered: bool) -> B256 {
        let mut key = B256::ZERO;
        if clustered {
            let len = rng.gen_range(28..32);
            key.0[len..]
                .iter_mut()
                .for_each(|b| *b = rng.gen_range(0..4));
            key.0[..len].iter_mut().for_each(|b| *b = 0x11);
            key.0[31] = rng.gen();
        } else {
            rng.fill(&mut key.0[..]);
        }
        key
    }

    #[test]
    fn incremental_root_equals_full_rebuild_under_random_edits() {
        for seed in 0..60u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let clustered = seed % 2 == 0;
            let mut model: BTreeMap<B256, Vec<u8>> = BTreeMap::new();
            let mut committed = Committed(NodeWrites::new());
            let owner = B256::repeat_byte(seed as u8);
            for _block in 0..25 {
                let mut changes: BTreeMap<B256, Option<Vec<u8>>> = BTreeMap::new();
                for _ in 0..rng.gen_range(1..40) {
                    let existing: Vec<B256> = model.keys().copied().collect();
                    let key = if !existing.is_empty() && rng.gen_bool(0.4) {
                        existing[rng.gen_range(0..existing.len())]
                    } else {
                        random_key(&mut rng, clustered)
                    };
                    let value = if rng.gen_bool(0.35) {
                        None
                    } else {
                        let len = if rng.gen_bool(0.5) {
                            1
                        } else {
                            rng.gen_range(2..40)
                        };
                        Some((0..len).map(|_| rng.gen_range(1..=255u8)).collect())
                    };
                    changes.insert(key, value);
                }
                let mut writes = NodeWrites::new();
                let root = Trie::new(&committed, &mut writes, owner)
                    .apply(&changes)
                    .expect("apply");
                for (k, v) in &changes {
                    match v {
                        Some(v) => model.insert(*k, v.clone()),
                        None => model.remove(k),
                    };
                }
                assert_eq!(root, oracle(&model), "seed {seed}");
                committed.0.extend(writes);
                committed.0.retain(|_, v| v.is_some());
            }
            // The table holds exactly the current trie: rebuilding from scratch writes the
            // same nodes.
            let mut fresh = NodeWrites::new();
            let all: BTreeMap<B256, Option<Vec<u8>>> =
                model.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
            Trie::new(&Empty, &mut fresh, owner)
                .apply(&all)
                .expect("fresh");
            fresh.retain(|_, v| v.is_some());
            assert_eq!(fresh, committed.0, "seed {seed}: stale or missing nodes");

            let trie_root = oracle(&model);
            let mut none = NodeWrites::new();
            let trie = Trie::new(&committed, &mut none, owner);
            for (k, v) in model.iter().take(10) {
                let proof = trie.proof(k).expect("proof");
                verify_proof(trie_root, Nibbles::unpack(k), Some(v.clone()), &proof)
                    .unwrap_or_else(|e| panic!("seed {seed}: proof of a present key: {e}"));
            }
            let absent = random_key(&mut rng, clustered);
            if !model.contains_key(&absent) {
                let proof = trie.proof(&absent).expect("proof");
                verify_proof(trie_root, Nibbles::unpack(absent), None, &proof)
                    .unwrap_or_else(|e| panic!("seed {seed}: proof of absence: {e}"));
            }
        }
    }

    #[test]
    fn emptied_trie_has_the_empty_root_and_no_nodes() {
        let mut writes = NodeWrites::new();
        let key = B256::repeat_byte(1);
        let root = Trie::new(&Empty, &mut writes, B256::ZERO)
            .apply(&BTreeMap::from([(key, Some(vec![1, 2, 3]))]))
            .expect("apply");
        assert_ne!(root, EMPTY_ROOT);
        let committed = Committed(writes);
        let mut writes = NodeWrites::new();
        let root = Trie::new(&committed, &mut writes, B256::ZERO)
            .apply(&BTreeMap::from([(key, None)]))
            .expect("apply");
        assert_eq!(root, EMPTY_ROOT);
        assert!(writes.values().all(Option::is_none));
    }

    #[test]
    fn undecodable_stored_node_is_reported_as_corruption() {
        let mut stored = NodeWrites::new();
        stored.insert(trie_node_key(&B256::ZERO, []), Some(vec![0xc3, 0x01]));
        let committed = Committed(stored);
        let mut writes = NodeWrites::new();
        let err = Trie::new(&committed, &mut writes, B256::ZERO)
            .apply(&BTreeMap::from([(B256::ZERO, Some(vec![1]))]))
            .expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
