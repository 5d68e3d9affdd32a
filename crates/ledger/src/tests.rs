//! Table-driven tests of each ledger module and property tests of the invariants.

use crate::state::{Genesis, Params, State};
use crate::{apply, begin_block, end_block, Receipt};
use aicpw_types::task::{FailureReason, MatchStrategy, Runtime, TaskKind, Verification};
use aicpw_types::tx::KeyGrant;
use aicpw_types::{
    Amount, BlockEnv, Hardware, Hash32, Keypair, NodeId, Reject, Resources, SignedTx, TaskId,
    TaskState, TaskTerms, Tx, TxBody,
};
use proptest::prelude::*;

const CHAIN: &str = "aicpw-test";

struct Net {
    state: State,
    height: u64,
    time_ms: u64,
    nonces: std::collections::BTreeMap<u32, u64>,
}

fn key(i: u32) -> Keypair {
    Keypair::dev(i)
}

fn hardware() -> Hardware {
    Hardware {
        cpu_cores: 8,
        memory_mb: 16_384,
        disk_mb: 100_000,
        bandwidth_mbps: 1000,
        gpu_model: String::new(),
        gpu_count: 0,
        gpu_vram_mb: 0,
    }
}

fn terms(budget: u128) -> TaskTerms {
    TaskTerms {
        name: "train".into(),
        kind: TaskKind::Training,
        runtime: Runtime::Sandbox,
        resources: Resources { cpu_cores: 2, memory_mb: 1024, ..Default::default() },
        time_limit_secs: 3600,
        budget: Amount(budget),
        max_price_per_hour: Amount(3_600_000),
        verification: Verification::None,
        strategy: MatchStrategy::LowestPrice,
        reputation_min: 0,
        network: false,
        encrypted: false,
        inputs_cid: "bafkreiexample".into(),
        result_key: [7; 32],
    }
}

impl Net {
    fn new() -> Net {
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            params: Params::default(),
            accounts: (0..8).map(|i| (key(i).account(), Amount::tokens(100_000))).collect(),
        };
        Net {
            state: State::genesis(&genesis),
            height: 0,
            time_ms: 1_000,
            nonces: Default::default(),
        }
    }

    fn env(&self) -> BlockEnv {
        BlockEnv {
            chain_id: CHAIN.into(),
            height: self.height,
            time_ms: self.time_ms,
            proposer: key(7).account(),
            randomness: Hash32::of(&self.height.to_le_bytes()),
        }
    }

    fn sign(&mut self, who: u32, body: TxBody) -> SignedTx {
        let nonce = self.nonces.entry(who).or_default();
        let tx = Tx {
            chain_id: CHAIN.into(),
            signer: key(who).account(),
            nonce: *nonce,
            fee: Amount(10),
            body,
        };
        *nonce += 1;
        key(who).sign(tx)
    }

    /// One block holding one transaction.
    fn block(&mut self, txs: &[SignedTx]) -> Vec<Result<Receipt, Reject>> {
        self.height += 1;
        self.time_ms += 1_000;
        let env = self.env();
        begin_block(&mut self.state, &env);
        let results = txs.iter().map(|tx| apply(&mut self.state, tx, &env)).collect();
        end_block(&mut self.state, &env);
        self.state.finalize_root();
        self.state.check_invariants().expect("invariants hold after every block");
        results
    }

    fn run(&mut self, who: u32, body: TxBody) -> Result<Receipt, Reject> {
        let tx = self.sign(who, body);
        let result = self.block(&[tx]).remove(0);
        if result.is_err() {
            // A rejected transaction does not use up its nonce.
            *self.nonces.entry(who).or_default() -= 1;
        }
        result
    }

    fn idle(&mut self, ms: u64) {
        self.time_ms += ms;
        self.block(&[]);
    }

    fn balance(&self, who: u32) -> Amount {
        self.state.accounts.get(&key(who).account()).map(|a| a.balance).unwrap_or_default()
    }

    fn provider(&mut self, who: u32, price: u128) -> NodeId {
        self.run(who, TxBody::Bond { amount: Amount::tokens(1_000) }).expect("bond");
        let body = TxBody::RegisterNode {
            hardware: hardware(),
            x25519_key: key(who).x25519_public(),
            endpoint: format!("node{who}"),
            price_per_hour: Amount(price),
        };
        self.run(who, body).expect("register");
        *self.state.nodes.keys().last().expect("a node")
    }

    fn task(&self, id: TaskId) -> &crate::state::Task {
        self.state.tasks.get(&id).expect("task exists")
    }
}

#[test]
fn transfer_moves_the_amount_and_pays_the_fee_to_the_proposer() {
    let mut net = Net::new();
    let (a, b, p) = (net.balance(0), net.balance(1), net.balance(7));
    net.run(0, TxBody::Transfer { to: key(1).account(), amount: Amount(500) }).expect("ok");
    assert_eq!(net.balance(0), Amount(a.0 - 510));
    assert_eq!(net.balance(1), Amount(b.0 + 500));
    assert_eq!(net.balance(7), Amount(p.0 + 10));
}

#[test]
fn bad_transactions_get_their_own_code_and_change_nothing() {
    let mut net = Net::new();
    let root = net.state.finalize_root().0;
    let transfer = |amount| TxBody::Transfer { to: key(1).account(), amount: Amount(amount) };
    let good = net.sign(0, transfer(1));
    let mut forged = good.clone();
    forged.signature[0] ^= 1;
    let mut other_chain = good.clone();
    other_chain.tx.chain_id = "elsewhere".into();
    let gap = key(0).sign(Tx { nonce: 5, ..good.tx.clone() });
    let overdrawn = key(0).sign(Tx { body: transfer(u128::MAX / 2), ..good.tx.clone() });
    let zero = key(0).sign(Tx { body: transfer(0), ..good.tx.clone() });
    let cheap = key(0).sign(Tx { fee: Amount(1), ..good.tx.clone() });
    let cases = [
        (forged, Reject::BadSignature),
        (other_chain, Reject::WrongChain),
        (gap, Reject::NonceGap),
        (overdrawn, Reject::InsufficientBalance),
        (zero, Reject::ZeroAmount),
        (cheap, Reject::FeeTooLow),
    ];
    for (tx, reject) in cases {
        net.height += 1;
        let env = net.env();
        assert_eq!(apply(&mut net.state, &tx, &env), Err(reject));
        assert_eq!(net.state.finalize_root().0, root, "a {reject} must leave the state unchanged");
    }
    let env = net.env();
    assert!(apply(&mut net.state, &good, &env).is_ok());
    assert_eq!(apply(&mut net.state, &good, &env), Err(Reject::NonceReplayed));
}

#[test]
fn oversize_transactions_are_rejected() {
    let mut net = Net::new();
    let grants = (0..64).map(|i| KeyGrant { node: NodeId(i), sealed_key: vec![0; 80] }).collect();
    let mut t = terms(10_000_000);
    t.name = "x".repeat(65);
    let result = net.run(0, TxBody::SubmitTask { terms: t, key_grants: grants });
    assert_eq!(result, Err(Reject::FieldTooLong));
}

#[test]
fn unbonded_stake_is_withdrawable_only_after_the_delay() {
    let mut net = Net::new();
    net.run(0, TxBody::Bond { amount: Amount(1_000) }).expect("bond");
    net.run(0, TxBody::Unbond { amount: Amount(400) }).expect("unbond");
    assert_eq!(net.run(0, TxBody::Withdraw), Err(Reject::NothingToWithdraw));
    let account = &net.state.accounts[&key(0).account()];
    assert_eq!((account.staked, account.unbonding_total()), (Amount(600), Amount(400)));
    for _ in 0..Params::default().unbonding_blocks {
        net.idle(1);
    }
    let before = net.balance(0);
    net.run(0, TxBody::Withdraw).expect("matured");
    assert_eq!(net.balance(0), Amount(before.0 + 400 - 10));
    assert_eq!(net.run(0, TxBody::Unbond { amount: Amount(601) }), Err(Reject::InsufficientStake));
}

#[test]
fn registering_a_node_needs_stake_and_only_the_owner_may_change_it() {
    let mut net = Net::new();
    let body = TxBody::RegisterNode {
        hardware: hardware(),
        x25519_key: [1; 32],
        endpoint: "n".into(),
        price_per_hour: Amount(100),
    };
    assert_eq!(net.run(0, body), Err(Reject::InsufficientStake));
    let node = net.provider(0, 100);
    assert_eq!(net.run(0, TxBody::Unbond { amount: Amount(1) }), Err(Reject::StakeLocked));
    assert_eq!(net.run(1, TxBody::DeregisterNode { node }), Err(Reject::NotNodeOwner));
    net.run(0, TxBody::DeregisterNode { node }).expect("owner deregisters");
    net.run(0, TxBody::Unbond { amount: Amount::tokens(1_000) }).expect("stake is free again");
}

#[test]
fn a_task_runs_is_paid_for_its_time_and_the_rest_is_refunded() {
    let mut net = Net::new();
    let node = net.provider(1, 3_600_000);
    let before = (net.balance(0), net.balance(1));
    net.run(0, TxBody::SubmitTask { terms: terms(10_000_000), key_grants: vec![] })
        .expect("submit");
    let id = TaskId(0);
    assert_eq!(net.task(id).state, TaskState::Running, "placed in the block it was submitted");
    assert_eq!(net.task(id).lease.as_ref().map(|l| l.node), Some(node));
    let heartbeat = TxBody::TaskHeartbeat { task: id, node, progress_permille: 500 };
    assert_eq!(net.run(2, heartbeat.clone()), Err(Reject::NotAssignedProvider));
    net.run(1, heartbeat).expect("heartbeat");
    let commit = TxBody::CommitResult {
        task: id,
        node,
        result_cid: "bafkreiresult".into(),
        output_hash: Hash32([3; 32]),
    };
    net.run(1, commit).expect("commit");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(net.run(2, TxBody::AcceptResult { task: id }), Err(Reject::NotTaskRequester));
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed);
    // Held the lease for 3 blocks of 1 s (a rejected heartbeat, a heartbeat, the commit) at
    // 1000 base units per second.
    assert_eq!(task.paid, Amount(3_000));
    assert_eq!(task.refunded, Amount(10_000_000 - 3_000));
    assert_eq!(net.balance(0), Amount(before.0 .0 - 3_000 - 20));
    assert_eq!(net.balance(1), Amount(before.1 .0 + 3_000 - 20));
    assert_eq!(net.state.nodes[&node].reputation.completed, 1);
    net.run(0, TxBody::RateTask { task: id, stars: 5 }).expect("rate");
    assert_eq!(net.run(0, TxBody::RateTask { task: id, stars: 4 }), Err(Reject::AlreadyRated));
}

#[test]
fn a_task_whose_provider_vanishes_is_reassigned_and_paid_once() {
    let mut net = Net::new();
    let first = net.provider(1, 1_800_000);
    let second = net.provider(2, 3_600_000);
    net.run(0, TxBody::SubmitTask { terms: terms(100_000_000), key_grants: vec![] }).expect("ok");
    let id = TaskId(0);
    assert_eq!(net.task(id).lease.as_ref().map(|l| l.node), Some(first), "cheapest first");
    net.idle(Params::default().lease_ms);
    let task = net.task(id);
    assert_eq!(task.lease.as_ref().map(|l| l.node), Some(second), "reassigned at once");
    assert_eq!((task.attempts, task.excluded.clone()), (2, vec![first]));
    assert_eq!(net.state.nodes[&first].reputation.expired, 1);
    let commit = TxBody::CommitResult {
        task: id,
        node: first,
        result_cid: "x".into(),
        output_hash: Hash32::default(),
    };
    assert_eq!(net.run(1, commit), Err(Reject::NotAssignedProvider), "the old lease is void");
    let commit = TxBody::CommitResult {
        task: id,
        node: second,
        result_cid: "x".into(),
        output_hash: Hash32::default(),
    };
    net.run(2, commit).expect("commit");
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(task.paid.0 + task.refunded.0, 100_000_000);
}

#[test]
fn a_task_no_node_can_run_waits_and_is_refunded_in_full_on_cancel() {
    let mut net = Net::new();
    net.provider(1, 3_600_000);
    let mut big = terms(100_000_000);
    big.resources.gpu_count = 8;
    let before = net.balance(0);
    net.run(0, TxBody::SubmitTask { terms: big, key_grants: vec![] }).expect("submit");
    net.idle(5_000);
    assert_eq!(net.task(TaskId(0)).state, TaskState::Queued);
    net.run(0, TxBody::CancelTask { task: TaskId(0) }).expect("cancel");
    let task = net.task(TaskId(0));
    assert_eq!(
        (task.state, task.failure),
        (TaskState::Cancelled, Some(FailureReason::CancelledByRequester))
    );
    assert_eq!(net.balance(0), Amount(before.0 - 20), "only fees were spent");
}

#[test]
fn a_task_that_breaks_its_limits_pays_for_the_time_used() {
    let mut net = Net::new();
    let node = net.provider(1, 3_600_000);
    net.run(0, TxBody::SubmitTask { terms: terms(10_000_000), key_grants: vec![] }).expect("ok");
    let failure =
        TxBody::ReportFailure { task: TaskId(0), node, reason: FailureReason::MemoryLimitExceeded };
    net.run(1, failure).expect("report");
    let task = net.task(TaskId(0));
    assert_eq!(
        (task.state, task.failure),
        (TaskState::Failed, Some(FailureReason::MemoryLimitExceeded))
    );
    assert_eq!(task.paid, Amount(1_000));
    assert_eq!(net.state.nodes[&node].reputation.failed, 0, "the task's fault, not the node's");
}

#[test]
fn a_task_that_fails_on_every_node_ends_with_attempts_exhausted_and_a_full_refund() {
    let mut net = Net::new();
    let nodes: Vec<NodeId> = (1..=3).map(|i| net.provider(i, 3_600_000)).collect();
    net.run(0, TxBody::SubmitTask { terms: terms(10_000_000), key_grants: vec![] }).expect("ok");
    for _ in 0..3 {
        let node = net.task(TaskId(0)).lease.as_ref().map(|l| l.node).expect("leased");
        let who = 1 + nodes.iter().position(|n| *n == node).expect("known") as u32;
        let failure =
            TxBody::ReportFailure { task: TaskId(0), node, reason: FailureReason::ProviderError };
        net.run(who, failure).expect("report");
    }
    let task = net.task(TaskId(0));
    assert_eq!(
        (task.state, task.failure),
        (TaskState::Failed, Some(FailureReason::AttemptsExhausted))
    );
    assert_eq!(task.refunded, Amount(10_000_000));
}

#[test]
fn submitting_needs_a_budget_for_the_whole_time_limit() {
    let mut net = Net::new();
    let result = net.run(0, TxBody::SubmitTask { terms: terms(3_599_999), key_grants: vec![] });
    assert_eq!(result, Err(Reject::BudgetTooLow));
    let result = net.run(0, TxBody::SubmitTask { terms: terms(u128::MAX / 4), key_grants: vec![] });
    assert_eq!(result, Err(Reject::InsufficientBalance));
}

#[test]
fn encrypted_tasks_go_only_to_nodes_holding_a_key_grant() {
    let mut net = Net::new();
    net.provider(1, 1_000);
    let granted = net.provider(2, 3_600_000);
    let mut t = terms(10_000_000);
    t.encrypted = true;
    let grants = vec![KeyGrant { node: granted, sealed_key: vec![0; 80] }];
    net.run(0, TxBody::SubmitTask { terms: t, key_grants: grants }).expect("ok");
    assert_eq!(net.task(TaskId(0)).lease.as_ref().map(|l| l.node), Some(granted));
}

#[test]
fn slashing_takes_stake_then_unbonding_and_burns_it() {
    let mut net = Net::new();
    net.run(0, TxBody::Bond { amount: Amount(1_000) }).expect("bond");
    net.run(0, TxBody::Unbond { amount: Amount(600) }).expect("unbond");
    let supply = net.state.meta.supply;
    let env = net.env();
    let mut delta = crate::delta::Delta::new(&net.state, &env);
    let taken = crate::staking::slash(&mut delta, key(0).account(), Amount(700), "test");
    let changes = delta.into_changes();
    net.state.commit(changes);
    assert_eq!(taken, Amount(700));
    let account = &net.state.accounts[&key(0).account()];
    assert_eq!((account.staked, account.unbonding_total()), (Amount(0), Amount(300)));
    assert_eq!(net.state.meta.supply, Amount(supply.0 - 700));
    net.state.check_invariants().expect("supply shrank by exactly the burn");
}

#[test]
fn the_incremental_root_equals_a_root_computed_from_scratch() {
    let mut net = Net::new();
    net.provider(1, 3_600_000);
    net.run(0, TxBody::SubmitTask { terms: terms(10_000_000), key_grants: vec![] }).expect("ok");
    let root = net.state.finalize_root().0;
    let s = &net.state;
    let mut rebuilt = State::from_tables(
        s.params.clone(),
        s.meta.clone(),
        s.accounts.clone(),
        s.nodes.clone(),
        s.tasks.clone(),
    );
    assert_eq!(rebuilt.finalize_root().0, root);
}

#[derive(Clone, Debug)]
enum Op {
    Transfer(u32, u32, u128),
    Bond(u32, u128),
    Unbond(u32, u128),
    Submit(u32, u128),
    Cancel(u32, u64),
    Commit(u64),
    Fail(u64, bool),
    Accept(u64),
    Idle(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6u32, 0..6u32, 0..10_000_000u128).prop_map(|(a, b, n)| Op::Transfer(a, b, n)),
        (0..6u32, 0..3_000_000_000u128).prop_map(|(a, n)| Op::Bond(a, n)),
        (0..6u32, 0..2_000_000_000u128).prop_map(|(a, n)| Op::Unbond(a, n)),
        (0..6u32, 3_000_000..40_000_000u128).prop_map(|(a, n)| Op::Submit(a, n)),
        (0..6u32, 0..8u64).prop_map(|(a, t)| Op::Cancel(a, t)),
        (0..8u64).prop_map(Op::Commit),
        (0..8u64, any::<bool>()).prop_map(|(t, f)| Op::Fail(t, f)),
        (0..8u64).prop_map(Op::Accept),
        (0..40_000u64).prop_map(Op::Idle),
    ]
}

fn lease_holder(net: &Net, task: u64) -> Option<(u32, NodeId)> {
    let node = net.state.tasks.get(&TaskId(task))?.lease.as_ref()?.node;
    let owner = net.state.nodes.get(&node)?.owner;
    (0..8).find(|i| key(*i).account() == owner).map(|i| (i, node))
}

fn play(net: &mut Net, op: Op) {
    let outcome = match op {
        Op::Transfer(a, b, n) => {
            net.run(a, TxBody::Transfer { to: key(b).account(), amount: Amount(n) })
        }
        Op::Bond(a, n) => net.run(a, TxBody::Bond { amount: Amount(n) }),
        Op::Unbond(a, n) => net.run(a, TxBody::Unbond { amount: Amount(n) }),
        Op::Submit(a, n) => net.run(a, TxBody::SubmitTask { terms: terms(n), key_grants: vec![] }),
        Op::Cancel(a, t) => net.run(a, TxBody::CancelTask { task: TaskId(t) }),
        Op::Commit(t) => match lease_holder(net, t) {
            Some((who, node)) => net.run(
                who,
                TxBody::CommitResult {
                    task: TaskId(t),
                    node,
                    result_cid: "c".into(),
                    output_hash: Hash32::default(),
                },
            ),
            None => return,
        },
        Op::Fail(t, task_fault) => match lease_holder(net, t) {
            Some((who, node)) => {
                let reason = if task_fault {
                    FailureReason::TimeLimitExceeded
                } else {
                    FailureReason::ProviderError
                };
                net.run(who, TxBody::ReportFailure { task: TaskId(t), node, reason })
            }
            None => return,
        },
        Op::Accept(t) => {
            let requester = net.state.tasks.get(&TaskId(t)).map(|task| task.requester);
            match (0..8).find(|i| Some(key(*i).account()) == requester) {
                Some(who) => net.run(who, TxBody::AcceptResult { task: TaskId(t) }),
                None => return,
            }
        }
        Op::Idle(ms) => {
            net.idle(ms);
            return;
        }
    };
    drop(outcome);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn invariants_hold_over_random_transaction_sequences(ops in proptest::collection::vec(op(), 1..40)) {
        let mut net = Net::new();
        net.provider(6, 3_600_000);
        net.provider(7, 1_800_000);
        let mut nonces_before: Vec<u64> = Vec::new();
        for op in ops {
            play(&mut net, op);
            // Checked after every block inside `Net::block`: supply conserved, escrow consistent.
            let nonces: Vec<u64> = (0..8).map(|i| net.state.accounts.get(&key(i).account()).map_or(0, |a| a.nonce)).collect();
            if !nonces_before.is_empty() {
                prop_assert!(nonces.iter().zip(&nonces_before).all(|(now, was)| now >= was));
            }
            nonces_before = nonces;
            let escrow: u128 = net.state.tasks.values().map(|t| t.escrow.0).sum();
            let open: u128 = net.state.tasks.values().filter(|t| !t.state.is_terminal()).map(|t| t.escrow.0).sum();
            prop_assert_eq!(escrow, open, "escrow is held only by open tasks");
            for task in net.state.tasks.values() {
                prop_assert!(task.state != TaskState::Running || task.lease.is_some());
            }
        }
    }
}
