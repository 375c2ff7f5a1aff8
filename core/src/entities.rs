//! Entity storage: dense ids for entity names, and a value per entity.
//!
//! An engine may know millions of entities, most of them idle, so the table is laid out for
//! memory: each name is stored once (the index holds ids, not names), values sit in
//! fixed-size chunks (no doubling slack, no copying every entity when the table grows),
//! and the index is an open-addressing table of 8-byte slots.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Index, IndexMut};
use std::sync::Arc;

/// An entity's id: its position in creation order. Entities are never removed.
pub(crate) type EntityId = u32;

/// Entities per chunk. The first chunk grows from small by doubling, so a small engine
/// stays small; later chunks are allocated at this size.
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Marks a free index slot.
const EMPTY: EntityId = EntityId::MAX;

/// One index slot: an entity id and the low bits of its name's hash, which place the slot
/// and let a probe skip other names without reading them.
#[derive(Clone, Copy)]
struct Slot {
    id: EntityId,
    hash: u32,
}

const FREE: Slot = Slot { id: EMPTY, hash: 0 };

/// Entities by id and by name.
pub(crate) struct Entities<T> {
    chunks: Vec<Vec<(Arc<str>, T)>>,
    /// Linear probing over a power-of-two number of slots, at most 7/8 full.
    slots: Vec<Slot>,
    /// SipHash keys, derived from the engine's seed rather than the OS (the engine draws no
    /// OS randomness); a host that seeds at random also keeps chosen names from forcing
    /// collisions.
    keys: (u64, u64),
    len: usize,
}

impl<T> Entities<T> {
    /// An empty table whose index is keyed from `seed`; it allocates on the first insert.
    pub(crate) fn new(seed: u64) -> Self {
        Entities {
            chunks: Vec::new(),
            slots: Vec::new(),
            // Two fixed odd constants spread one seed into two unrelated keys.
            keys: (
                seed ^ 0x9e37_79b9_7f4a_7c15,
                seed.rotate_left(32) ^ 0xc2b2_ae3d_27d4_eb4f,
            ),
            len: 0,
        }
    }

    fn hash(&self, name: &str) -> u32 {
        // std's keyed SipHash-2-4 is deprecated only in favour of the unkeyed
        // DefaultHasher; it is stable, and the keys are what this index needs.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(self.keys.0, self.keys.1);
        name.hash(&mut h);
        // Truncation keeps the low bits, which SipHash mixes as well as the high ones.
        h.finish() as u32
    }

    /// The chunk and the position in it of entity `id`.
    fn locate(id: EntityId) -> (usize, usize) {
        ((id >> CHUNK_BITS) as usize, id as usize & (CHUNK - 1))
    }

    fn entry(&self, id: EntityId) -> &(Arc<str>, T) {
        let (chunk, at) = Self::locate(id);
        &self.chunks[chunk][at]
    }

    /// The id of the entity called `name`, if it is known.
    #[cfg(test)]
    pub(crate) fn find(&self, name: &str) -> Option<EntityId> {
        self.find_hashed(name, self.hash(name))
    }

    /// The id of the entity called `name`, added with `make()` if it is new. The name is
    /// hashed once for both the lookup and the insert.
    pub(crate) fn find_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> T) -> EntityId {
        let hash = self.hash(name);
        match self.find_hashed(name, hash) {
            Some(id) => id,
            None => self.insert_hashed(name, hash, make()),
        }
    }

    fn find_hashed(&self, name: &str, hash: u32) -> Option<EntityId> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.id == EMPTY {
                return None;
            }
            if slot.hash == hash && *self.entry(slot.id).0 == *name {
                return Some(slot.id);
            }
            i = (i + 1) & mask;
        }
    }

    /// Add an entity that is not known yet, whose name hashes to `hash`; returns its id.
    fn insert_hashed(&mut self, name: &str, hash: u32, value: T) -> EntityId {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow_index();
        }
        let id = self.len as EntityId;
        self.place(Slot { id, hash });
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push((Arc::from(name), value)),
            last => {
                // The first chunk grows on demand; later ones are needed whole.
                let mut chunk = match last {
                    None => Vec::new(),
                    Some(_) => Vec::with_capacity(CHUNK),
                };
                chunk.push((Arc::from(name), value));
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
        id
    }

    fn place(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = slot.hash as usize & mask;
        while self.slots[i].id != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow_index(&mut self) {
        let size = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![FREE; size]);
        for slot in old.into_iter().filter(|s| s.id != EMPTY) {
            self.place(slot);
        }
    }

    /// The name of an entity.
    pub(crate) fn name(&self, id: EntityId) -> &Arc<str> {
        &self.entry(id).0
    }

    /// Every entity with its name, in creation order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &T)> {
        self.chunks
            .iter()
            .flatten()
            .map(|(name, value)| (name, value))
    }
}

impl<T> Index<EntityId> for Entities<T> {
    type Output = T;

    fn index(&self, id: EntityId) -> &T {
        &self.entry(id).1
    }
}

impl<T> IndexMut<EntityId> for Entities<T> {
    fn index_mut(&mut self, id: EntityId) -> &mut T {
        let (chunk, at) = Self::locate(id);
        &mut self.chunks[chunk][at].1
    }
}

impl<T: fmt::Debug> fmt::Debug for Entities<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_creation_order_and_names_find_them() {
        let mut t = Entities::new(1);
        let n = 3 * CHUNK + 5;
        for i in 0..n {
            let name = format!("entity-{i}");
            assert_eq!(t.find(&name), None);
            assert_eq!(t.find_or_insert_with(&name, || i), i as EntityId);
        }
        for i in 0..n {
            let id = t.find(&format!("entity-{i}")).unwrap();
            assert_eq!(id, i as EntityId);
            assert_eq!(t[id], i);
            assert_eq!(&**t.name(id), format!("entity-{i}"));
        }
        assert_eq!(t.find("entity-x"), None);
        t[7] = 70;
        assert_eq!(t[7], 70);
        let order: Vec<usize> = t.iter().map(|(_, &v)| v).take(9).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5, 6, 70, 8]);
        assert_eq!(t.iter().count(), n);
    }

    #[test]
    fn chunks_after_the_first_have_no_slack() {
        let mut t = Entities::new(1);
        for i in 0..2 * CHUNK + 1 {
            t.find_or_insert_with(&i.to_string(), || 0u8);
        }
        assert!(t.chunks.iter().all(|c| c.capacity() == CHUNK));
    }
}
