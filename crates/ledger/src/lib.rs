//! AICPW ledger: the pure, deterministic state machine (no I/O, no clock, no threads, no floats).
//!
//! A transaction goes through a stateless check, a stateful check (nonce, fee) and execution on a
//! scratch copy ([`delta::Delta`]) that is committed only when every step succeeded.

pub mod arbitration;
pub mod block;
pub mod cancel;
pub mod challenge;
pub mod check;
mod compare;
pub mod delta;
pub mod dispute;
pub mod event;
pub mod market;
pub mod money;
pub mod params;
pub mod penalty;
pub mod registry;
pub mod release;
pub mod reputation;
mod root;
pub mod staking;
pub mod state;
pub mod verdict;
pub mod withheld;

#[cfg(test)]
mod cancel_tests;
#[cfg(test)]
mod execute_tests;
#[cfg(test)]
mod faults_tests;
#[cfg(test)]
mod grant_tests;
#[cfg(test)]
mod judges_tests;
#[cfg(test)]
mod money_tests;
#[cfg(test)]
mod nondeterministic_tests;
#[cfg(test)]
mod release_props;
#[cfg(test)]
mod release_tests;
#[cfg(test)]
mod seat_draw_tests;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verification_tests;
#[cfg(test)]
mod withheld_tests;

pub use block::{begin_block, end_block};
pub use event::Event;
pub use money::Violation;
pub use state::{Genesis, Params, State};

use aicpw_types::{AccountId, BlockEnv, Hash32, Reject, SignedTx, TxBody};
use delta::Delta;
use serde::Serialize;
use state::EntryChanges;

/// What an accepted transaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub tx_id: Hash32,
    pub kind: &'static str,
    pub events: Vec<Event>,
}

/// Checks the signature, then applies. Nodes that verify signatures in batches call
/// [`apply_verified`] instead.
pub fn apply(state: &mut State, tx: &SignedTx, env: &BlockEnv) -> Result<Receipt, Reject> {
    check::stateless(tx, &env.chain_id)?;
    if !tx.verify_signature() {
        return Err(Reject::BadSignature);
    }
    apply_verified(state, tx, env)
}

/// Applies a transaction whose signature the caller has already verified.
pub fn apply_verified(state: &mut State, tx: &SignedTx, env: &BlockEnv) -> Result<Receipt, Reject> {
    check::stateless(tx, &env.chain_id)?;
    let mut delta = Delta::new(state, env);
    charge(&mut delta, &tx.tx)?;
    execute(&mut delta, tx.tx.signer, &tx.tx.body)?;
    let created = delta.created();
    money::pay_storage(&mut delta, tx.tx.signer, created)?;
    let events = state.commit(delta.into_changes());
    Ok(Receipt { tx_id: tx.id(), kind: tx.tx.body.kind(), events })
}

/// What executing one block did.
#[derive(Debug)]
pub struct Executed {
    /// The transactions applied, in order: the block's content.
    pub included: Vec<SignedTx>,
    pub receipts: Vec<Receipt>,
    /// Events of the block's own rules (expiries, draws, placements), besides the receipts'.
    pub events: Vec<Event>,
    /// Transactions left out, each with its rejection (a block being replayed must have none).
    pub rejected: Vec<(Hash32, Reject)>,
    pub state_root: Hash32,
    /// Every entry the block changed, with its new encoding (what a node persists).
    pub changed: EntryChanges,
}

/// Executes one block: the rules of its start, each transaction in order (one whose entry in
/// `verified` is false is rejected `BadSignature` without being looked at; the caller checked
/// the signatures, in batches), the rules of its end, and the state root. The one way a block is
/// executed: by the sequencer producing it, by a node replaying its log, by a validator
/// verifying a proposal and applying a finalized block. A failed transaction is left out and
/// the block goes on; a block whose content must be applied whole (replay, a proposal being
/// verified) is refused by its caller when `rejected` is not empty. A conservation violation
/// (a bug in a rule) leaves `state` with the block half-applied: the caller must not commit it.
pub fn execute_block(
    state: &mut State,
    env: &BlockEnv,
    txs: Vec<SignedTx>,
    verified: &[bool],
) -> Result<Executed, Violation> {
    let mut events = begin_block(state, env);
    let (mut included, mut receipts, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
    for (index, tx) in txs.into_iter().enumerate() {
        let result = if verified.get(index).copied().unwrap_or(false) {
            apply_verified(state, &tx, env)
        } else {
            Err(Reject::BadSignature)
        };
        match result {
            Ok(receipt) => {
                receipts.push(receipt);
                included.push(tx);
            }
            Err(reject) => rejected.push((tx.id(), reject)),
        }
    }
    events.extend(end_block(state, env)?);
    let (state_root, changed) = state.finalize_root();
    Ok(Executed { included, receipts, events, rejected, state_root, changed })
}

/// The stateful check: the nonce is the next one and the fee is paid to the block's proposer.
fn charge(delta: &mut Delta<'_>, tx: &aicpw_types::Tx) -> Result<(), Reject> {
    let mut account = delta.account(&tx.signer);
    if tx.nonce < account.nonce {
        return Err(Reject::NonceReplayed);
    }
    if tx.nonce > account.nonce {
        return Err(Reject::NonceGap);
    }
    if tx.fee < delta.base.params.fee_min {
        return Err(Reject::FeeTooLow);
    }
    account.nonce += 1;
    delta.set_account(tx.signer, account);
    money::pay_fee(delta, tx.signer, tx.fee)
}

fn execute(delta: &mut Delta<'_>, who: AccountId, body: &TxBody) -> Result<(), Reject> {
    use registry::Offer;
    match body.clone() {
        TxBody::Transfer { to, amount } => money::transfer(delta, who, to, amount),
        TxBody::Bond { amount } => staking::bond(delta, who, amount),
        TxBody::Unbond { amount } => staking::unbond(delta, who, amount),
        TxBody::Withdraw => staking::withdraw(delta, who),
        TxBody::RegisterNode { hardware, x25519_key, endpoint, price_per_hour } => {
            let offer = Offer { hardware, x25519_key, endpoint, price_per_hour };
            registry::register(delta, who, offer).map(|_| ())
        }
        TxBody::UpdateNode { node, hardware, x25519_key, endpoint, price_per_hour } => {
            let offer = Offer { hardware, x25519_key, endpoint, price_per_hour };
            registry::update(delta, who, node, offer)
        }
        TxBody::DeregisterNode { node } => registry::deregister(delta, who, node),
        TxBody::NodeHeartbeat { node } => registry::heartbeat(delta, who, node),
        TxBody::SubmitTask { terms, answer_commitment } => {
            market::submit(delta, who, terms, answer_commitment).map(|_| ())
        }
        TxBody::CancelTask { task } => cancel::cancel(delta, who, task),
        TxBody::TaskHeartbeat { task, node, progress_permille } => {
            market::heartbeat(delta, who, task, node, progress_permille)
        }
        TxBody::CommitResult { task, node, commitment, tag } => {
            verdict::commit_result(delta, who, task, node, commitment, tag)
        }
        TxBody::ReportFailure { task, node, reason } => {
            market::report_failure(delta, who, task, node, reason)
        }
        TxBody::AcceptResult { task } => market::accept(delta, who, task),
        TxBody::RateTask { task, stars } => market::rate(delta, who, task, stars),
        TxBody::SettleExpired { task } => market::settle_expired(delta, task),
        TxBody::GrantKeys { task, key_grants } => market::grant_keys(delta, who, task, key_grants),
        TxBody::RevealResult { task, node, output_hash, salt, result_cid, summary } => {
            let opening = verdict::Opening { output_hash, salt, result_cid, summary };
            verdict::reveal_result(delta, who, task, node, opening)
        }
        TxBody::DisputeResult { task, bond } => dispute::open(delta, who, task, bond),
        TxBody::RevealAnswer { task, answer_hash, salt } => {
            dispute::reveal_answer(delta, who, task, answer_hash, salt)
        }
        TxBody::Appeal { node } => arbitration::appeal(delta, who, node),
        TxBody::VoteAppeal { node, approve } => arbitration::vote(delta, who, node, approve),
        TxBody::ChallengeCommit { challenge: id, root } => challenge::commit(delta, who, id, root),
        TxBody::ChallengeOpen { challenge: id, first, paths } => {
            challenge::open(delta, who, id, first, paths)
        }
        TxBody::SubmitPuzzle { challenge: id, nonce } => {
            challenge::submit_puzzle(delta, who, id, nonce)
        }
        TxBody::ClaimCapacity { node, units } => challenge::claim(delta, who, node, units),
    }
}
