//! The keys of one principal's sessions in the memory store's owner index (`memory.rs`).
//! Most principals hold one session: its key is kept inline (no heap allocation per principal,
//! no bigger than the `Vec` it replaces); more keys live in a boxed slice of exactly their size.

/// One principal's session keys, in insertion order; the caller keeps them distinct.
#[derive(Default)]
pub enum OwnerKeys<K> {
    #[default]
    Empty,
    One(K),
    Many(Box<[K]>),
}

impl<K: Copy + PartialEq> OwnerKeys<K> {
    pub fn as_slice(&self) -> &[K] {
        match self {
            OwnerKeys::Empty => &[],
            OwnerKeys::One(k) => std::slice::from_ref(k),
            OwnerKeys::Many(ks) => ks,
        }
    }

    pub fn contains(&self, k: &K) -> bool {
        self.as_slice().contains(k)
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, K> {
        self.as_slice().iter()
    }

    /// Adds `k` at the end. Copies the others: a principal's sessions change at sign-in and
    /// sign-out, not per request.
    pub fn push(&mut self, k: K) {
        *self = match std::mem::take(self) {
            OwnerKeys::Empty => OwnerKeys::One(k),
            other => {
                let mut v = Vec::with_capacity(other.as_slice().len() + 1);
                v.extend_from_slice(other.as_slice());
                v.push(k);
                OwnerKeys::Many(v.into_boxed_slice())
            }
        };
    }

    /// Removes every occurrence of `k`; the others keep their order.
    pub fn remove(&mut self, k: &K) {
        if !self.contains(k) {
            return;
        }
        let rest: Vec<K> = self.iter().copied().filter(|x| x != k).collect();
        *self = match rest.len() {
            0 => OwnerKeys::Empty,
            1 => rest
                .first()
                .copied()
                .map_or(OwnerKeys::Empty, OwnerKeys::One),
            _ => OwnerKeys::Many(rest.into_boxed_slice()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_added_and_removed_in_order_and_one_key_needs_no_heap() {
        let mut ks = OwnerKeys::<[u8; 22]>::default();
        assert!(ks.is_empty());
        ks.push([1; 22]);
        assert!(matches!(ks, OwnerKeys::One(_)));
        ks.push([2; 22]);
        ks.push([3; 22]);
        assert_eq!(ks.as_slice(), &[[1; 22], [2; 22], [3; 22]]);
        assert!(ks.contains(&[2; 22]) && !ks.contains(&[4; 22]));
        ks.remove(&[4; 22]);
        assert_eq!(ks.iter().count(), 3);
        ks.remove(&[1; 22]);
        assert_eq!(ks.as_slice(), &[[2; 22], [3; 22]]);
        ks.remove(&[3; 22]);
        assert!(matches!(ks, OwnerKeys::One(k) if k == [2; 22]));
        ks.remove(&[2; 22]);
        assert!(ks.is_empty());
        // The index's value is no bigger than the `Vec<Key>` it replaced.
        assert_eq!(
            std::mem::size_of::<OwnerKeys<[u8; 22]>>(),
            std::mem::size_of::<Vec<[u8; 22]>>()
        );
        assert_eq!(
            std::mem::size_of::<OwnerKeys<[u8; 16]>>(),
            std::mem::size_of::<Vec<[u8; 16]>>()
        );
    }
}
