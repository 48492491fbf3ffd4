//! [`UsedActions`]: the actions a run used, in order of first use — the next manifest's
//! records.

use std::collections::HashSet;

use sgcache_types::{ActionId, IndexEntry};

/// The index entries a run used (local hits, remote hits, puts), each action once, in order
/// of first use.
#[derive(Debug, Clone, Default)]
pub struct UsedActions {
    order: Vec<IndexEntry>,
    seen: HashSet<ActionId>,
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
