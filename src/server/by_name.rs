//! `ByName`: the observed roles and databases, looked up by name.
//!
//! A vector sorted by the name each item already carries, searched by
//! bisection. It replaces a `HashMap<String, T>` for the memory budget of the
//! sidecar (8 MiB): at 1,000 tenants the hash tables of the observed state
//! were the largest block of a run's heap, because a table doubles past
//! seven eighths full (1,000 databases took 2,048 buckets of ~410 bytes, the
//! key a second copy of the name). Here each item is stored once, in a vector
//! sized by the catalog read, and lookups stay logarithmic; the observed state
//! is built once per run and only looked up afterwards.

/// An item that knows its own name.
pub trait Named {
    fn name(&self) -> &str;
}

/// Items kept sorted by [`Named::name`], at most one per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByName<T> {
    items: Vec<T>,
}

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName { items: Vec::new() }
    }
}

impl<T: Named> ByName<T> {
    /// An empty set with room for `capacity` items.
    pub fn with_capacity(capacity: usize) -> Self {
        ByName {
            items: Vec::with_capacity(capacity),
        }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|item| item.name().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        self.find(name).ok().map(|i| &self.items[i])
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.find(name).ok().map(|i| &mut self.items[i])
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Adds `item`, replacing the one of the same name; returns that one.
    pub fn insert(&mut self, item: T) -> Option<T> {
        match self.find(item.name()) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i], item)),
            Err(i) => {
                self.items.insert(i, item);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Sorts items pushed in any order and keeps the last of each name, as
    /// repeated [`ByName::insert`] would. Items that come sorted and unique
    /// (the catalog reads ask for `ORDER BY name COLLATE "C"`, which is the
    /// byte order of `str`) are kept as they are, with no second buffer: a
    /// stable sort would allocate one as large as the input.
    fn from_unsorted(mut items: Vec<T>) -> Self {
        if !items.is_sorted_by(|a, b| a.name() < b.name()) {
            // Reversed, then a stable sort: among equal names the last
            // pushed comes first, and `dedup_by` keeps the first of each run.
            items.reverse();
            items.sort_by(|a, b| a.name().cmp(b.name()));
            items.dedup_by(|later, earlier| later.name() == earlier.name());
        }
        ByName { items }
    }
}

impl<T: Named> FromIterator<T> for ByName<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        ByName::from_unsorted(iter.into_iter().collect())
    }
}

impl<T: Named> Extend<T> for ByName<T> {
    /// Pushes, then restores the order once (`insert` per item would be
    /// quadratic on a large catalog read).
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let mut items = std::mem::take(&mut self.items);
        items.extend(iter);
        *self = ByName::from_unsorted(items);
    }
}

impl<'a, T> IntoIterator for &'a ByName<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Item {
        name: String,
        value: u32,
    }

    impl Named for Item {
        fn name(&self) -> &str {
            &self.name
        }
    }

    fn item(name: &str, value: u32) -> Item {
        Item {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn looks_up_inserts_and_replaces() {
        let mut set: ByName<Item> = [item("b", 1), item("a", 2), item("c", 3)]
            .into_iter()
            .collect();
        assert_eq!(set.get("a").map(|i| i.value), Some(2));
        assert!(set.contains_key("c"));
        assert!(!set.contains_key("d"));
        assert_eq!(set.insert(item("a", 9)), Some(item("a", 2)));
        assert_eq!(set.insert(item("aa", 4)), None);
        set.get_mut("b").unwrap().value = 7;
        let names: Vec<(&str, u32)> = set.iter().map(|i| (i.name(), i.value)).collect();
        assert_eq!(names, [("a", 9), ("aa", 4), ("b", 7), ("c", 3)]);
        assert_eq!(set.len(), 4);
        assert!(ByName::<Item>::default().is_empty());
    }

    proptest! {
        /// Behaves as a map from name to the last value given for it,
        /// whether filled by collect, extend or insert.
        #[test]
        fn agrees_with_a_map(
            first in proptest::collection::vec(("[a-d]{0,2}", any::<u32>()), 0..40),
            more in proptest::collection::vec(("[a-d]{0,2}", any::<u32>()), 0..40),
        ) {
            let mut model: BTreeMap<String, u32> = BTreeMap::new();
            let mut set: ByName<Item> = first.iter().map(|(n, v)| item(n, *v)).collect();
            model.extend(first.iter().cloned());
            let (extended, inserted) = more.split_at(more.len() / 2);
            set.extend(extended.iter().map(|(n, v)| item(n, *v)));
            model.extend(extended.iter().cloned());
            for (n, v) in inserted {
                prop_assert_eq!(set.insert(item(n, *v)).map(|i| i.value), model.insert(n.clone(), *v));
            }
            let got: Vec<(String, u32)> = set.iter().map(|i| (i.name.clone(), i.value)).collect();
            let want: Vec<(String, u32)> = model.clone().into_iter().collect();
            prop_assert_eq!(got, want);
            for name in ["", "a", "ab", "dd", "e"] {
                prop_assert_eq!(set.get(name).map(|i| i.value), model.get(name).copied());
            }
        }
    }
}
