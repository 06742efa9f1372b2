//! How current the index is, per kind: the sensor keeps answering from
//! the last state while the API server is away, and says so.

use std::collections::BTreeMap;

use serde::Serialize;

use super::objects::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The first list has not completed yet.
    Listing,
    /// Listed and watching.
    Synced,
    /// The resource is not served (CRD not installed): retried later.
    Missing,
    /// RBAC refuses list/watch: retried later.
    Forbidden,
    /// The API server fails or is unreachable: the last state is kept.
    Failing,
    /// Read from `--inventory` files.
    Snapshot,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindSync {
    pub phase: Phase,
    /// A full list was applied at least once: the index holds real data
    /// for this kind, possibly stale while `phase` is not `synced`.
    pub synced_once: bool,
    pub relists: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct SyncBoard {
    kinds: BTreeMap<Kind, KindSync>,
}

impl SyncBoard {
    fn entry(&mut self, kind: Kind) -> &mut KindSync {
        self.kinds.entry(kind).or_insert(KindSync {
            phase: Phase::Listing,
            synced_once: false,
            relists: 0,
            errors: 0,
            last_error: None,
        })
    }

    /// A (re)list starts. A kind that is failing, missing or refused stays
    /// so until the list succeeds: every retry of a refused list starts
    /// one, and a phase that flapped through `listing` would be logged
    /// as new at each.
    pub fn listing(&mut self, kind: Kind) {
        let e = self.entry(kind);
        e.relists += 1;
        if !matches!(e.phase, Phase::Failing | Phase::Missing | Phase::Forbidden) {
            e.phase = Phase::Listing;
        }
    }

    /// Returns the phase it left.
    pub fn synced(&mut self, kind: Kind) -> Phase {
        let e = self.entry(kind);
        let was = e.phase;
        e.phase = Phase::Synced;
        e.synced_once = true;
        was
    }

    pub fn snapshot(&mut self, kind: Kind) {
        let e = self.entry(kind);
        if !e.synced_once {
            e.phase = Phase::Snapshot;
        }
    }

    /// Returns the phase it left, so callers log transitions only.
    pub fn failed(&mut self, kind: Kind, phase: Phase, error: String) -> Phase {
        let e = self.entry(kind);
        let was = e.phase;
        e.phase = phase;
        e.errors += 1;
        e.last_error = Some(error);
        was
    }

    /// The kind's state is as known as it will get: listed at least once,
    /// or not served, or not allowed (then it is known to be absent).
    pub fn settled(&self, kind: Kind) -> bool {
        self.kinds.get(&kind).is_some_and(|s| {
            s.synced_once || matches!(s.phase, Phase::Missing | Phase::Forbidden | Phase::Snapshot)
        })
    }

    pub fn get(&self, kind: Kind) -> Option<&KindSync> {
        self.kinds.get(&kind)
    }

    pub fn all(&self) -> BTreeMap<Kind, KindSync> {
        self.kinds.clone()
    }
}
