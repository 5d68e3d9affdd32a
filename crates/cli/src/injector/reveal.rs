//! The injector's second half: following its injections to their verified result, revealing
//! the known answer, following the dispute a mismatch opens, and recording what the ledger
//! decided.

use super::{Injector, Verdict, UNSUBMITTED_FORGET_MS};
use crate::known_answers::{unix_ms, unix_secs};
use aicpw_types::{Reject, TaskId, TxBody};
use anyhow::Result;
use serde_json::Value;

impl Injector<'_> {
    /// Looks at one pending injection and acts on its state: reveal once verified, record the
    /// end of one that ended otherwise.
    pub(super) fn check(&mut self, id: u64) {
        let task = match self.client.get(&format!("/v1/tasks/{id}")) {
            Ok(task) => task,
            Err(e) => {
                eprintln!("task {id}: cannot read it: {e}");
                return;
            }
        };
        let Some(index) = self.pending_index(id) else { return };
        // Nodes placed on an injection get its content key like those of any task of the account.
        if let Err(e) = crate::requester::grant_placed(self.client, self.key, &task) {
            eprintln!("task {id}: cannot grant its key yet: {e:#}");
        }
        let state = task["state"].as_str().unwrap_or("");
        match state {
            // A dispute (opened by the answer's mismatch, or by hand) decides the result itself.
            "verifying" if task["dispute"].is_null() => self.reveal(index, id, &task),
            "completed" | "failed" | "cancelled" => {
                let (verdict, detail) = judged(&task);
                let line = describe(verdict, &detail);
                // Journaled before it is said: whoever reads the line finds it recorded.
                self.end(index, verdict, detail);
                println!("task {id}: {line}");
            }
            _ => {}
        }
    }

    fn end(&mut self, index: usize, verdict: Verdict, detail: String) {
        self.journal.finish(index, verdict, detail, unix_secs());
        self.save();
    }

    /// Sends `RevealAnswer`; the receipt says whether the result matched (a mismatch opens the
    /// dispute whose committee decides it).
    fn reveal(&mut self, index: usize, id: u64, task: &Value) {
        let pending = &self.journal.pending[index];
        let body = TxBody::RevealAnswer {
            task: TaskId(id),
            answer_hash: pending.answer_hash,
            salt: pending.salt,
        };
        let node = task["result"]["node"].as_u64().map_or("?".to_string(), |n| n.to_string());
        let receipt = match self.client.send(self.key, body, true) {
            Ok(receipt) => receipt,
            // The task moved on between the read and the reveal: the next check sees how.
            Err(e) if e.reject() == Some(Reject::DisputeWindowClosed) => return,
            Err(e) if e.reject() == Some(Reject::BadCommitment) => {
                eprintln!("task {id}: the ledger refused the journaled answer: {e}");
                self.end(index, Verdict::Unchecked, format!("reveal refused: {e}"));
                return;
            }
            Err(e) if e.reject() == Some(Reject::InsufficientBalance) => {
                eprintln!(
                    "task {id}: the account cannot cover the dispute bond a mismatch takes: fund \
                     it before the acceptance window closes; trying again"
                );
                return;
            }
            Err(e) => {
                eprintln!("task {id}: reveal failed: {e}; trying again");
                return;
            }
        };
        let events = receipt["events"].as_array().cloned().unwrap_or_default();
        let revealed = events.iter().find(|e| e["event"] == "known_answer_revealed");
        match revealed.and_then(|e| e["matched"].as_bool()) {
            Some(true) => {
                println!("confirmed task {id}: node {node} returned the known answer");
                self.end(index, Verdict::Confirmed, format!("node {node}"));
            }
            // The claim alone proves nothing: the ledger opened a dispute (its bond taken from
            // this account) whose committee re-runs the task; the task's end says who was right.
            Some(false) => println!(
                "task {id}: node {node}'s result differs from the known answer; a dispute \
                 committee re-runs it"
            ),
            None => eprintln!("task {id}: the reveal's receipt does not say whether it matched"),
        }
    }

    /// Finds injections journaled without a task id (the submission got no answer) by their
    /// answer commitment among the account's tasks; forgets those never submitted.
    pub(super) fn recover(&mut self) -> Result<()> {
        let me = self.key.account();
        let tasks = self.client.get(&format!("/v1/tasks?requester={me}"))?;
        let tasks = tasks.as_array().cloned().unwrap_or_default();
        let mut changed = false;
        for index in (0..self.journal.pending.len()).rev() {
            let pending = &self.journal.pending[index];
            if pending.task.is_some() || pending.requester != me {
                continue;
            }
            let commitment =
                aicpw_ledger::dispute::answer_commitment(&me, &pending.answer_hash, &pending.salt)
                    .to_string();
            let found = tasks
                .iter()
                .find(|t| t["answer_commitment"].as_str() == Some(commitment.as_str()))
                .and_then(|t| t["id"].as_u64());
            let age_ms = unix_ms().saturating_sub(pending.created_unix_ms);
            if let Some(id) = found {
                let entry = &pending.entry;
                println!("injected task {id}: known answer {entry} (found after a lost receipt)");
                self.journal.pending[index].task = Some(id);
                changed = true;
            } else if age_ms > UNSUBMITTED_FORGET_MS {
                let detail = "no task with its commitment on the ledger".to_string();
                self.journal.finish(index, Verdict::NotSubmitted, detail, unix_secs());
                changed = true;
            }
        }
        if changed {
            self.save();
        }
        Ok(())
    }
}

/// What an injection's ended task (its JSON from `/v1/tasks/{id}`) says about the known answer.
pub(super) fn judged(task: &Value) -> (Verdict, String) {
    let state = task["state"].as_str().unwrap_or("");
    let node = task["result"]["node"].as_u64().map_or("?".to_string(), |n| n.to_string());
    let claim = &task["dispute"];
    let outcome = claim["outcome"].as_str().filter(|_| !claim["claimed_answer"].is_null());
    match (state, outcome) {
        (_, Some("upheld")) => (Verdict::Caught, format!("node {node}; the committee agreed")),
        (_, Some("rejected")) => (Verdict::Refuted, format!("node {node}; the committee agreed")),
        (_, Some(outcome)) => (Verdict::Unchecked, format!("node {node}; dispute {outcome}")),
        ("completed", None) => (Verdict::Unchecked, "completed before the reveal".to_string()),
        (state, None) => {
            let reason = task["failure"].as_str().unwrap_or("no reason");
            (Verdict::NoResult, format!("{state} ({reason})"))
        }
    }
}

fn describe(verdict: Verdict, detail: &str) -> String {
    match verdict {
        Verdict::Caught => format!(
            "provider caught ({detail} with the known answer): slashed known-answer-wrong, the \
             escrow refunded"
        ),
        Verdict::Refuted => format!(
            "the result stands ({detail} with it, not with the known answer): check the library \
             entry; the bond paid the committee and the provider"
        ),
        Verdict::Unchecked => format!("unchecked ({detail})"),
        _ => format!("no result to check ({detail})"),
    }
}
