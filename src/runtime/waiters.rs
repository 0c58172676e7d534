//! Logins waiting for an answer: the one bounded list for every kind of
//! wait (a Matrix verdict, a key by `kid`, the first key set). A full list
//! refuses a new login at once; nothing ever waits for room in it.

use std::collections::HashMap;

/// The list is full: it holds this many logins already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(pub usize);

/// Waiting logins by waiter id, at most `limit` of them.
#[derive(Debug)]
pub struct Waiters<T> {
    items: HashMap<u64, T>,
    limit: usize,
}

impl<T> Waiters<T> {
    pub fn new(limit: usize) -> Self {
        Waiters { items: HashMap::new(), limit }
    }

    /// Add waiter `id`, or refuse when the list is full.
    pub fn add(&mut self, id: u64, item: T) -> Result<(), Full> {
        if self.items.len() >= self.limit {
            return Err(Full(self.limit));
        }
        self.items.insert(id, item);
        Ok(())
    }

    /// Take waiter `id` out (its answer is here, or its time is up).
    pub fn take(&mut self, id: u64) -> Option<T> {
        self.items.remove(&id)
    }

    /// Take out every waiter that `pred` picks, oldest first.
    pub fn take_where(&mut self, pred: impl Fn(&T) -> bool) -> Vec<(u64, T)> {
        let mut ids: Vec<u64> = self.items.iter().filter(|(_, t)| pred(t)).map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.items.remove(&id).map(|t| (id, t))).collect()
    }

    /// Take out every waiter, oldest first.
    pub fn take_all(&mut self) -> Vec<(u64, T)> {
        self.take_where(|_| true)
    }

    /// Does any waiter match `pred`?
    pub fn any(&self, pred: impl Fn(&T) -> bool) -> bool {
        self.items.values().any(pred)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_list_refuses_at_once_and_takes_again_once_emptied() {
        let mut w = Waiters::new(2);
        assert_eq!(w.add(1, "a"), Ok(()));
        assert_eq!(w.add(2, "b"), Ok(()));
        assert_eq!(w.add(3, "c"), Err(Full(2)));
        assert_eq!(w.take(1), Some("a"));
        assert_eq!(w.take(1), None, "answered once");
        assert_eq!(w.add(3, "c"), Ok(()));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn take_where_picks_in_arrival_order() {
        let mut w = Waiters::new(10);
        for (id, kid) in [(5, "k1"), (2, "k2"), (9, "k1"), (3, "k1")] {
            w.add(id, kid).unwrap();
        }
        assert!(w.any(|k| *k == "k2"));
        assert_eq!(w.take_where(|k| *k == "k1"), vec![(3, "k1"), (5, "k1"), (9, "k1")]);
        assert_eq!(w.take_all(), vec![(2, "k2")]);
        assert!(w.is_empty());
    }
}
