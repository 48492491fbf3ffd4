//! [`UsedActions`]: the actions a run used, in order of first use — the next manifest's
//! records.

use std::collections::HashSet;

use sgcache_types::{ActionId, IndexEntry};

/// The index entries a run used (local hits, remote hits, puts), each action once, in order
/// of first use; and the actions it asked for and found nowhere.
#[derive(Debug, Clone, Default)]
pub struct UsedActions {
    order: Vec<IndexEntry>,
    seen: HashSet<ActionId>,
    missed: Vec<ActionId>,
    missed_set: HashSet<ActionId>,
}

impl UsedActions {
    /// Records `e`; `false` if its action was recorded already.
    pub fn note(&mut self, e: IndexEntry) -> bool {
        if !self.seen.insert(e.action) {
            return false;
        }
        self.order.push(e);
        true
    }

    /// Records that a lookup of `action` found nothing (locally or remotely).
    pub fn note_miss(&mut self, action: ActionId) {
        if self.missed_set.insert(action) {
            self.missed.push(action);
        }
    }

    /// The actions that missed and were not put afterwards (the go command does not store
    /// them), in order.
    pub fn misses(&self) -> impl Iterator<Item = &ActionId> {
        self.missed.iter().filter(|a| !self.seen.contains(a))
    }

    /// The entries, in order of first use.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.order
    }

    /// How many actions were used.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `action` was used.
    pub fn contains(&self, action: &ActionId) -> bool {
        self.seen.contains(action)
    }
}

impl FromIterator<IndexEntry> for UsedActions {
    fn from_iter<I: IntoIterator<Item = IndexEntry>>(it: I) -> Self {
        let mut u = UsedActions::default();
        for e in it {
            u.note(e);
        }
        u
    }
}
