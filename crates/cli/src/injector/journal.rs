//! The injector's journal (`injector.json` in the library): the known answers in flight, so a
//! restarted injector still reveals every one, how often each entry was used, and what came of
//! the last injections. Written atomically before every transaction that depends on it.

use crate::known_answers::write_atomic;
use aicpw_types::{AccountId, Hash32};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// Version of `injector.json`.
pub const JOURNAL_VERSION: u32 = 1;
/// Injections in flight at most; above it the injector skips its draws until some end.
pub const PENDING_MAX: usize = 1_000;
/// Outcomes kept (the totals count all of them).
pub const OUTCOMES_KEPT_MAX: usize = 1_000;
/// Largest journal read.
pub const JOURNAL_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// One injected task whose answer is not revealed yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `None` between journaling the salt and the node's receipt: after a crash there, the task
    /// is found again by its answer commitment.
    pub task: Option<u64>,
    pub requester: AccountId,
    pub entry: String,
    pub answer_hash: Hash32,
    pub salt: Hash32,
    pub created_unix_ms: u64,
}

/// How an injection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The verified result equals the known answer: a passed audit for its producers.
    Confirmed,
    /// The verified result differed and the dispute committee's re-run confirmed the known
    /// answer: its producers were slashed `known-answer-wrong`, the escrow refunded.
    Caught,
    /// The verified result differed, but the committee's re-run confirmed the result: the entry's
    /// answer is wrong or not deterministic, and the bond paid the committee and the provider.
    Refuted,
    /// The task completed before the answer was revealed (accepted by hand, or the acceptance
    /// window closed while the injector was down): nothing was checked.
    Unchecked,
    /// The task ended without a result (failed, cancelled): nothing to check.
    NoResult,
    /// The submission never reached the ledger.
    NotSubmitted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub task: Option<u64>,
    pub entry: String,
    pub verdict: Verdict,
    pub detail: String,
    pub unix_secs: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub injected: u64,
    pub confirmed: u64,
    pub caught: u64,
    /// Journals written before the committee re-ran mismatches have none.
    #[serde(default)]
    pub refuted: u64,
    pub unchecked: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub pending: Vec<Pending>,
    /// Injections per library entry, so no entry is shown to providers too often.
    pub uses: BTreeMap<String, u32>,
    pub outcomes: VecDeque<Outcome>,
    pub totals: Totals,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            version: JOURNAL_VERSION,
            pending: Vec::new(),
            uses: BTreeMap::new(),
            outcomes: VecDeque::new(),
            totals: Totals::default(),
        }
    }
}

pub fn journal_path(library: &Path) -> PathBuf {
    library.join("injector.json")
}

impl Journal {
    /// The library's journal, or an empty one if there is none yet.
    pub fn load(library: &Path) -> Result<Journal> {
        let path = journal_path(library);
        let size = match std::fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Journal::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if size > JOURNAL_BYTES_MAX {
            bail!("{}: {size} bytes, the limit is {JOURNAL_BYTES_MAX}", path.display());
        }
        let journal: Journal = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("{} is not an injector journal", path.display()))?;
        if journal.version != JOURNAL_VERSION {
            let version = journal.version;
            bail!("{}: version {version}, this aicpw reads {JOURNAL_VERSION}", path.display());
        }
        Ok(journal)
    }

    pub fn save(&self, library: &Path) -> Result<()> {
        std::fs::create_dir_all(library)
            .with_context(|| format!("cannot create {}", library.display()))?;
        write_atomic(&journal_path(library), &serde_json::to_vec_pretty(self)?)
    }

    /// Whether `task` is one of this journal's injections, pending or ended.
    pub fn knows(&self, task: u64) -> bool {
        self.pending.iter().any(|p| p.task == Some(task))
            || self.outcomes.iter().any(|o| o.task == Some(task))
    }

    /// Ends a pending injection with its outcome (the oldest outcomes are forgotten past
    /// [`OUTCOMES_KEPT_MAX`]; the totals keep counting).
    pub fn finish(&mut self, index: usize, verdict: Verdict, detail: String, unix_secs: u64) {
        if index >= self.pending.len() {
            return;
        }
        let pending = self.pending.remove(index);
        match verdict {
            Verdict::Confirmed => self.totals.confirmed += 1,
            Verdict::Caught => self.totals.caught += 1,
            Verdict::Refuted => self.totals.refuted += 1,
            Verdict::Unchecked | Verdict::NoResult => self.totals.unchecked += 1,
            // Counted as injected when journaled; it never was.
            Verdict::NotSubmitted => self.totals.injected = self.totals.injected.saturating_sub(1),
        }
        self.outcomes.push_back(Outcome {
            task: pending.task,
            entry: pending.entry,
            verdict,
            detail,
            unix_secs,
        });
        while self.outcomes.len() > OUTCOMES_KEPT_MAX {
            self.outcomes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(task: Option<u64>) -> Pending {
        Pending {
            task,
            requester: AccountId([1; 32]),
            entry: "0123456789abcdef".into(),
            answer_hash: Hash32([2; 32]),
            salt: Hash32([3; 32]),
            created_unix_ms: 42,
        }
    }

    #[test]
    fn the_journal_round_trips_through_its_file_with_its_pending_salts() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(Journal::load(dir.path()).expect("empty"), Journal::default());
        let mut journal = Journal::default();
        journal.pending.push(pending(Some(7)));
        journal.pending.push(pending(None));
        journal.uses.insert("0123456789abcdef".into(), 2);
        journal.totals.injected = 3;
        journal.finish(0, Verdict::Confirmed, "node 1".into(), 9);
        journal.pending.push(pending(Some(8)));
        journal.save(dir.path()).expect("save");
        let loaded = Journal::load(dir.path()).expect("load");
        assert_eq!(loaded, journal);
        assert_eq!(loaded.pending[1].salt, Hash32([3; 32]));
        assert!(loaded.knows(7) && loaded.knows(8) && !loaded.knows(9));
        assert_eq!(loaded.totals.confirmed, 1);
        assert!(!dir.path().join("injector.tmp").exists(), "no temporary file is left");
    }

    #[test]
    fn outcomes_are_bounded_but_the_totals_keep_counting() {
        let mut journal = Journal::default();
        for task in 0..(OUTCOMES_KEPT_MAX as u64 + 5) {
            journal.pending.push(pending(Some(task)));
            journal.finish(0, Verdict::Caught, String::new(), 0);
        }
        assert_eq!(journal.outcomes.len(), OUTCOMES_KEPT_MAX);
        assert_eq!(journal.totals.caught, OUTCOMES_KEPT_MAX as u64 + 5);
        assert_eq!(journal.outcomes.front().and_then(|o| o.task), Some(5));
    }

    #[test]
    fn a_journal_of_another_version_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let journal = Journal { version: 99, ..Journal::default() };
        journal.save(dir.path()).expect("save");
        assert!(Journal::load(dir.path()).is_err());
    }
}
