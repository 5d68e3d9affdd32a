//! Appeals of frozen nodes: a frozen provider appeals, and every provider with stake votes on
//! the others' appeals.
//!
//! The voters' rule (a staker's policy, not the ledger's): approve a node frozen for faults alone
//! (expired leases, missed challenges: what outages cause), reject one with a proven offence
//! (a slash) on record.

use super::{sent_recently, Provider, RESEND_MS};
use crate::party::Ctx;
use aicpw_ledger::state::NodeStatus;
use aicpw_types::{NodeId, TxBody};

impl Provider {
    /// Appeals the node's freeze, as often as the ledger allows.
    pub(super) fn appeal(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        let Some(record) = ctx.state.nodes.get(&node) else { return };
        let appeals_max = ctx.state.params.verification.appeals_max;
        let may = record.status == NodeStatus::Frozen
            && record.appeal.is_none()
            && record.appeals < appeals_max;
        if may && !sent_recently(self.appeal_sent_ms, ctx.now, RESEND_MS) {
            ctx.send(TxBody::Appeal { node });
            self.appeal_sent_ms = Some(ctx.now);
        }
    }

    /// Votes once on every open appeal of another owner's node.
    pub(super) fn vote(&mut self, ctx: &mut Ctx<'_>) {
        let me = self.wallet.account;
        let stake_min = ctx.state.params.verification.vote_stake_min;
        let staked = ctx.state.accounts.get(&me).is_some_and(|a| a.staked >= stake_min);
        if !staked {
            return;
        }
        for (_, id) in &ctx.state.index.appeals {
            let Some(node) = ctx.state.nodes.get(id) else { continue };
            let Some(appeal) = &node.appeal else { continue };
            if node.owner == me || appeal.votes.iter().any(|v| v.voter == me) {
                continue;
            }
            let key = (*id, appeal.opened_ms);
            if sent_recently(self.votes_sent_ms.get(&key).copied(), ctx.now, RESEND_MS) {
                continue;
            }
            let approve = node.reputation.offences == 0;
            ctx.send(TxBody::VoteAppeal { node: *id, approve });
            self.votes_sent_ms.insert(key, ctx.now);
        }
    }
}
