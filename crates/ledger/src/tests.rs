//! Table-driven tests of each ledger module and property tests of the invariants.

use crate::state::{Genesis, NodeStatus, Params, State};
use crate::{apply, begin_block, end_block, Receipt};
use aicpw_types::task::{FailureReason, MatchStrategy, Runtime, TaskKind, Verification};
use aicpw_types::tx::KeyGrant;
use aicpw_types::{
    Amount, BlockEnv, Hardware, Hash32, Keypair, NodeId, Reject, Resources, SignedTx, TaskId,
    TaskState, TaskTerms, Tx, TxBody,
};
use proptest::prelude::*;

pub(crate) const CHAIN: &str = "aicpw-test";

#[derive(Clone)]
pub(crate) struct Net {
    pub state: State,
    pub height: u64,
    pub time_ms: u64,
    nonces: std::collections::BTreeMap<u32, u64>,
    /// Supply at genesis: supply + burned must stay equal to it.
    genesis_supply: u128,
    /// Events of the last block: its own rules' and its transactions'.
    pub events: Vec<crate::Event>,
    /// Events of every block so far, in order.
    pub log: Vec<crate::Event>,
    /// Whether every active node passes a capacity challenge before each `keep_alive` block, so
    /// its intervals are vouched for (`release::vouches_for_interval`). On by default; the
    /// challenge rounds themselves are tested in `challenge::tests`.
    pub vouching: bool,
    /// Whether [`Net::block`] also runs the block that draws the random seats it froze.
    pub settle_draws: bool,
}

/// Dev accounts a test may use (0..8 are funded at genesis, others by transfers).
const ACCOUNTS: u32 = 32;

pub(crate) fn key(i: u32) -> Keypair {
    Keypair::dev(i)
}

/// The salt a test provider uses for its commitment to `hash` on `task`.
pub(crate) fn salt(task: TaskId, node: NodeId) -> Hash32 {
    Hash32::of(&[task.0.to_le_bytes(), node.0.to_le_bytes()].concat())
}

/// The CID under which a test provider stores its result.
pub(crate) fn result_cid(node: NodeId) -> String {
    format!("bafkresult{}", node.0)
}

pub(crate) fn hardware() -> Hardware {
    Hardware {
        region: String::new(),
        cpu_cores: 8,
        memory_mb: 16_384,
        disk_mb: 100_000,
        bandwidth_mbps: 1000,
        gpu_model: String::new(),
        gpu_count: 0,
        gpu_vram_mb: 0,
        allows_network: false,
        runs_containers: false,
    }
}

pub(crate) fn terms(budget: u128) -> TaskTerms {
    TaskTerms {
        name: "train".into(),
        kind: TaskKind::Training,
        runtime: Runtime::Sandbox,
        resources: Resources { cpu_cores: 2, memory_mb: 1024, ..Default::default() },
        time_limit_secs: 3600,
        budget: Amount(budget),
        max_price_per_hour: Amount(3_600_000),
        verification: Verification::Spot,
        strategy: MatchStrategy::LowestPrice,
        reputation_min: 0,
        network: false,
        encrypted: false,
        inputs_cid: "bafkreiexample".into(),
        input_cids: Vec::new(),
        result_key: [7; 32],
        nondeterministic: None,
    }
}

impl Net {
    /// A net whose transactions pay no storage fee, so the rules' tests can count balances to
    /// the unit; `storage_tests` pay it.
    pub fn new() -> Net {
        Net::with_params(Params { storage_fee_per_entry: Amount::ZERO, ..Params::default() })
    }

    pub fn with_params(params: Params) -> Net {
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            params,
            accounts: (0..8).map(|i| (key(i).account(), Amount::tokens(100_000))).collect(),
        };
        let state = State::genesis(&genesis);
        let genesis_supply = state.meta.supply.0;
        Net {
            state,
            height: 0,
            time_ms: 1_000,
            nonces: Default::default(),
            genesis_supply,
            events: Vec::new(),
            log: Vec::new(),
            vouching: true,
            settle_draws: true,
        }
    }

    pub fn env(&self) -> BlockEnv {
        BlockEnv {
            chain_id: CHAIN.into(),
            height: self.height,
            time_ms: self.time_ms,
            proposer: key(7).account(),
            randomness: Hash32::of(&self.height.to_le_bytes()),
        }
    }

    pub fn sign(&mut self, who: u32, body: TxBody) -> SignedTx {
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

    /// One block holding these transactions; then, if it froze the candidates of random seats
    /// and `settle_draws` is on, the empty block at the same time that draws them, as a live
    /// chain does a moment later (its events are added to the first block's).
    pub fn block(&mut self, txs: &[SignedTx]) -> Vec<Result<Receipt, Reject>> {
        let env = self.open_block(1_000);
        let results = txs.iter().map(|tx| self.apply_recorded(tx, &env)).collect();
        self.close_block(&env);
        let height = self.height;
        let frozen = self.state.tasks.values().any(|t| {
            !t.state.is_terminal() && t.seat_draw.as_ref().is_some_and(|d| d.height == height)
        });
        if self.settle_draws && frozen {
            let events = std::mem::take(&mut self.events);
            let env = self.open_block(0);
            self.close_block(&env);
            self.events = events.into_iter().chain(std::mem::take(&mut self.events)).collect();
        }
        results
    }

    /// One block `advance_ms` after the last, holding `txs` signed in order; a rejected one gives
    /// its nonce back before the next is signed.
    pub fn block_after(
        &mut self,
        advance_ms: u64,
        txs: Vec<(u32, TxBody)>,
    ) -> Vec<Result<Receipt, Reject>> {
        let env = self.open_block(advance_ms);
        let mut results = Vec::new();
        for (who, body) in txs {
            let tx = self.sign(who, body);
            let result = self.apply_recorded(&tx, &env);
            if result.is_err() {
                *self.nonces.entry(who).or_default() -= 1;
            }
            results.push(result);
        }
        self.close_block(&env);
        results
    }

    fn open_block(&mut self, advance_ms: u64) -> BlockEnv {
        self.height += 1;
        self.time_ms += advance_ms;
        let env = self.env();
        self.events = begin_block(&mut self.state, &env);
        env
    }

    fn apply_recorded(&mut self, tx: &SignedTx, env: &BlockEnv) -> Result<Receipt, Reject> {
        let result = apply(&mut self.state, tx, env);
        if let Ok(receipt) = &result {
            self.events.extend(receipt.events.iter().cloned());
        }
        result
    }

    fn close_block(&mut self, env: &BlockEnv) {
        self.events.extend(end_block(&mut self.state, env).expect("money is conserved"));
        self.log.extend(self.events.iter().cloned());
        self.state.finalize_root();
        self.state.check_invariants().expect("invariants hold after every block");
        let burned = self.state.meta.burned.0;
        assert_eq!(
            self.state.meta.supply.0 + burned,
            self.genesis_supply,
            "only burns shrink supply"
        );
    }

    pub fn run(&mut self, who: u32, body: TxBody) -> Result<Receipt, Reject> {
        let tx = self.sign(who, body);
        let result = self.block(&[tx]).remove(0);
        if result.is_err() {
            // A rejected transaction does not use up its nonce.
            *self.nonces.entry(who).or_default() -= 1;
        }
        result
    }

    /// Lets `ms` pass with live providers: every active node and every running lease sends its
    /// heartbeat at least every 10 s.
    pub fn wait(&mut self, ms: u64) {
        let until = self.time_ms + ms;
        while self.time_ms < until {
            self.time_ms += (until - self.time_ms).min(10_000).saturating_sub(1_000);
            self.keep_alive();
        }
    }

    /// One block with a heartbeat of every active node and every running lease.
    pub fn keep_alive(&mut self) {
        let mut bodies = Vec::new();
        for node in self.state.nodes.values().filter(|n| n.status == NodeStatus::Active) {
            bodies.push((node.owner, TxBody::NodeHeartbeat { node: node.id }));
        }
        for task in self.state.tasks.values().filter(|t| !t.state.is_terminal()) {
            for lease in task.leases.iter().filter(|l| l.is_running()) {
                let owner = self.state.nodes[&lease.node].owner;
                let body =
                    TxBody::TaskHeartbeat { task: task.id, node: lease.node, progress_permille: 1 };
                bodies.push((owner, body));
            }
        }
        let txs: Vec<SignedTx> = bodies
            .into_iter()
            .filter_map(|(owner, body)| {
                let who = (0..ACCOUNTS).find(|i| key(*i).account() == owner)?;
                Some(self.sign(who, body))
            })
            .collect();
        if self.vouching {
            self.pass_challenges();
        }
        self.block(&txs);
        for (who, nonce) in self.nonces.iter_mut() {
            *nonce = self.state.accounts.get(&key(*who).account()).map_or(0, |a| a.nonce);
        }
    }

    /// Records a passed matrix challenge issued now for every active node.
    pub fn pass_challenges(&mut self) {
        let env = self.env();
        let mut delta = crate::delta::Delta::new(&self.state, &env);
        for node in self.state.nodes.values().filter(|n| n.status == NodeStatus::Active) {
            let mut node = node.clone();
            node.capacity.passed += 1;
            node.capacity.matrix = Some(crate::challenge::Challenge {
                id: aicpw_types::ChallengeId(u64::MAX - node.id.0),
                node: node.id,
                kind: crate::challenge::ChallengeKind::Matrix,
                seed: Hash32::default(),
                n: 64,
                tile: 16,
                open_count: 0,
                difficulty: 0,
                sized_for: Default::default(),
                issued_ms: self.time_ms,
                issued_height: self.height,
                deadline_ms: self.time_ms,
                status: crate::challenge::ChallengeStatus::Passed,
                root: None,
                response_ms: 0,
                committed_height: self.height,
                open_randomness: None,
                open_deadline_ms: self.time_ms,
                opened: 0,
                units: Default::default(),
                failure: None,
            });
            delta.set_node(node);
        }
        let changes = delta.into_changes();
        self.state.commit(changes);
    }

    pub fn idle(&mut self, ms: u64) {
        self.time_ms += ms;
        self.block(&[]);
    }

    pub fn balance(&self, who: u32) -> Amount {
        self.state.accounts.get(&key(who).account()).map(|a| a.balance).unwrap_or_default()
    }

    pub fn provider(&mut self, who: u32, price: u128) -> NodeId {
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

    pub fn task(&self, id: TaskId) -> &crate::state::Task {
        self.state.tasks.get(&id).expect("task exists")
    }

    /// The state rebuilt from its tables, as a restarted node loads it.
    pub fn rebuilt(&self) -> State {
        let s = &self.state;
        State::from_tables(
            s.params.clone(),
            s.meta.clone(),
            s.accounts.clone(),
            s.nodes.clone(),
            s.tasks.clone(),
        )
    }

    pub fn submit(&mut self, who: u32, terms: TaskTerms) -> TaskId {
        let body = TxBody::SubmitTask { terms, answer_commitment: Hash32::of(b"random") };
        let receipt = self.run(who, body).expect("submit");
        receipt
            .events
            .iter()
            .find_map(|e| match e {
                crate::Event::TaskSubmitted { task, .. } => Some(*task),
                _ => None,
            })
            .expect("a task id")
    }

    /// The dev account that owns `node`.
    pub fn owner(&self, node: NodeId) -> u32 {
        let owner = self.state.nodes[&node].owner;
        (0..ACCOUNTS).find(|i| key(*i).account() == owner).expect("a dev account owns the node")
    }

    /// Nodes holding a lease of the task's current round, in placement order.
    pub fn leased(&self, id: TaskId) -> Vec<NodeId> {
        let pending = crate::state::Verdict::Pending;
        self.task(id).leases.iter().filter(|l| l.verdict == pending).map(|l| l.node).collect()
    }

    /// The running worker's node.
    pub fn worker(&self, id: TaskId) -> NodeId {
        self.leased(id)[0]
    }

    pub fn commit(&mut self, id: TaskId, node: NodeId, output: &[u8]) -> Result<Receipt, Reject> {
        self.commit_summary(id, node, output, &[])
    }

    /// Commits `output` with a non-deterministic task's `summary` (empty for a deterministic one).
    pub fn commit_summary(
        &mut self,
        id: TaskId,
        node: NodeId,
        output: &[u8],
        summary: &[i64],
    ) -> Result<Receipt, Reject> {
        let tag = aicpw_verify::equality_tag(id.0, &Hash32::of(output).0, summary);
        self.commit_tagged(id, node, output, summary, Hash32(tag))
    }

    /// Commits `output` with whatever equality `tag` (a true one is `equality_tag`'s).
    pub fn commit_tagged(
        &mut self,
        id: TaskId,
        node: NodeId,
        output: &[u8],
        summary: &[i64],
        tag: Hash32,
    ) -> Result<Receipt, Reject> {
        let who = self.owner(node);
        let commitment = aicpw_verify::commitment(
            id.0,
            &key(who).account().0,
            &Hash32::of(output).0,
            summary,
            &result_cid(node),
            &salt(id, node).0,
        );
        let commitment = Hash32(commitment);
        self.run(who, TxBody::CommitResult { task: id, node, commitment, tag })
    }

    pub fn reveal(&mut self, id: TaskId, node: NodeId, output: &[u8]) -> Result<Receipt, Reject> {
        self.reveal_summary(id, node, output, &[])
    }

    pub fn reveal_summary(
        &mut self,
        id: TaskId,
        node: NodeId,
        output: &[u8],
        summary: &[i64],
    ) -> Result<Receipt, Reject> {
        let who = self.owner(node);
        let body = TxBody::RevealResult {
            task: id,
            node,
            output_hash: Hash32::of(output),
            salt: salt(id, node),
            result_cid: result_cid(node),
            summary: summary.to_vec(),
        };
        self.run(who, body)
    }

    /// Spot audits at one in a million, for tests of a lone result's reveal mechanics that no
    /// audit draw should send looking for an auditor.
    pub fn spot_audits_off(&mut self) {
        self.state.params.verification.economics.audit_rate_min_ppm = 1;
    }

    /// The referee of an audit whose tags differed commits `outputs[2]` blind and reveals it;
    /// then worker and auditor reveal theirs. Returns the referee.
    pub fn referee(&mut self, id: TaskId, outputs: [&[u8]; 3]) -> NodeId {
        let nodes = self.leased(id);
        self.commit(id, nodes[2], outputs[2]).expect("referee commits");
        for i in [2, 0, 1] {
            self.reveal(id, nodes[i], outputs[i]).expect("reveal");
        }
        nodes[2]
    }

    /// The referee of an audit whose tags differed commits `outputs[2]`, a third result, blind:
    /// no majority is possible, so two more judges are drawn before anything is revealed; they
    /// commit `outputs[3..]` blind and all five reveal, judges first. Returns the five nodes.
    pub fn referee_escalated(&mut self, id: TaskId, outputs: [&[u8]; 5]) -> Vec<NodeId> {
        let referee = self.leased(id)[2];
        self.commit(id, referee, outputs[2]).expect("referee commits");
        let task = self.task(id);
        assert_eq!(
            (task.round, task.seats),
            (crate::state::Round::Referee, 0),
            "two more judges drawn"
        );
        assert!(task.leases.iter().all(|l| l.reveal.is_none()), "before anything was revealed");
        assert_eq!(self.reveal(id, referee, outputs[2]), Err(Reject::RevealNotOpen), "blind");
        let nodes = self.leased(id);
        assert_eq!(nodes.len(), 5);
        for i in [3, 4] {
            self.commit(id, nodes[i], outputs[i]).expect("judge commits");
        }
        assert_eq!(
            self.reveal(id, nodes[0], outputs[0]),
            Err(Reject::RevealNotOpen),
            "judges first"
        );
        for i in [2, 3, 4, 0, 1] {
            self.reveal(id, nodes[i], outputs[i]).expect("reveal");
        }
        nodes
    }

    /// Commits and reveals `output` on a lease that is alone in its round.
    pub fn finish_lease(&mut self, id: TaskId, node: NodeId, output: &[u8]) {
        self.commit(id, node, output).expect("commit");
        self.reveal(id, node, output).expect("reveal");
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
    let mut t = terms(12_000_000);
    t.name = "x".repeat(65);
    let result = net.run(0, TxBody::SubmitTask { terms: t, answer_commitment: Hash32::default() });
    assert_eq!(result, Err(Reject::FieldTooLong));
    let grants = (0..65).map(|i| KeyGrant { node: NodeId(i), sealed_key: vec![0; 80] }).collect();
    let result = net.run(0, TxBody::GrantKeys { task: TaskId(0), key_grants: grants });
    assert_eq!(result, Err(Reject::TooManyKeyGrants));
}

/// Input CIDs are public and held by every node's store while the task is open: a list too
/// long, a CID named twice, an empty or overlong one is refused, and a good list is kept.
#[test]
fn input_cids_are_bounded_distinct_and_kept_on_the_task() {
    let mut net = Net::new();
    let cid = |i: usize| format!("bafkreidataset{i}");
    for bad in [
        (0..17).map(cid).collect::<Vec<_>>(),
        vec![cid(1), cid(1)],
        vec![String::new()],
        vec!["b".repeat(129)],
    ] {
        let mut t = terms(12_000_000);
        t.input_cids = bad.clone();
        let body = TxBody::SubmitTask { terms: t, answer_commitment: Hash32::default() };
        assert_eq!(net.run(0, body), Err(Reject::InputCidsInvalid), "{bad:?}");
    }
    assert_eq!(Reject::InputCidsInvalid.code(), 705);
    let mut t = terms(12_000_000);
    t.input_cids = (0..16).map(cid).collect();
    let body = TxBody::SubmitTask { terms: t.clone(), answer_commitment: Hash32::default() };
    net.run(0, body).expect("16 distinct CIDs are accepted");
    let task = net.state.tasks.values().last().expect("the task");
    assert_eq!(task.terms.input_cids, t.input_cids);
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
    net.submit(0, terms(12_000_000));
    let id = TaskId(0);
    assert_eq!(net.task(id).state, TaskState::Running, "placed in the block it was submitted");
    assert_eq!(net.leased(id), vec![node]);
    let heartbeat = TxBody::TaskHeartbeat { task: id, node, progress_permille: 500 };
    assert_eq!(net.run(2, heartbeat.clone()), Err(Reject::NotAssignedProvider));
    net.run(1, heartbeat).expect("heartbeat");
    net.commit(id, node, b"result").expect("commit");
    assert_eq!(net.task(id).state, TaskState::Running, "committed, not yet revealed");
    net.reveal(id, node, b"result").expect("reveal");
    assert_eq!(net.task(id).state, TaskState::Verifying);
    assert_eq!(net.run(2, TxBody::AcceptResult { task: id }), Err(Reject::NotTaskRequester));
    net.run(0, TxBody::AcceptResult { task: id }).expect("accept");
    let task = net.task(id);
    assert_eq!(task.state, TaskState::Completed);
    // Held the lease for 3 blocks of 1 s (a rejected heartbeat, a heartbeat, the commit) at
    // 1000 base units per second.
    assert_eq!(task.paid, Amount(3_000));
    assert_eq!(task.refunded, Amount(12_000_000 - 3_000));
    assert_eq!(net.balance(0), Amount(before.0 .0 - 3_000 - 20));
    assert_eq!(net.balance(1), Amount(before.1 .0 + 3_000 - 30));
    assert_eq!(net.state.nodes[&node].reputation.completed, 1);
    net.run(0, TxBody::RateTask { task: id, stars: 5 }).expect("rate");
    assert_eq!(net.run(0, TxBody::RateTask { task: id, stars: 4 }), Err(Reject::AlreadyRated));
}

#[test]
fn a_task_whose_provider_vanishes_is_reassigned_and_paid_once() {
    let mut net = Net::new();
    let first = net.provider(1, 1_800_000);
    let second = net.provider(2, 3_600_000);
    net.submit(0, terms(100_000_000));
    let id = TaskId(0);
    assert_eq!(net.leased(id), vec![first], "cheapest first");
    net.idle(Params::default().lease_ms);
    let task = net.task(id);
    assert_eq!(net.leased(id), vec![second], "reassigned at once");
    assert_eq!((task.attempts, task.excluded.clone()), (2, vec![first]));
    assert_eq!(net.state.nodes[&first].reputation.expired, 1);
    assert_eq!(
        net.commit(id, first, b"x"),
        Err(Reject::NotAssignedProvider),
        "the old lease is void"
    );
    net.finish_lease(id, second, b"x");
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
    net.submit(0, big);
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
fn a_task_that_breaks_its_limits_pays_the_time_its_challenges_vouch_for() {
    let mut net = Net::new();
    let node = net.provider(1, 3_600_000);
    net.submit(0, terms(12_000_000));
    net.pass_challenges();
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
    net.submit(0, terms(12_000_000));
    for _ in 0..3 {
        let node = net.worker(TaskId(0));
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
    assert_eq!(task.refunded, Amount(12_000_000));
}

#[test]
fn submitting_needs_a_budget_for_the_whole_time_limit() {
    let mut net = Net::new();
    let result = net.run(
        0,
        TxBody::SubmitTask { terms: terms(10_799_999), answer_commitment: Hash32::default() },
    );
    assert_eq!(result, Err(Reject::BudgetTooLow));
    let result = net.run(
        0,
        TxBody::SubmitTask { terms: terms(u128::MAX / 4), answer_commitment: Hash32::default() },
    );
    assert_eq!(result, Err(Reject::InsufficientBalance));
}

/// A task that asks for network access waits for a node whose operator allows it, however many
/// cheaper nodes fit otherwise, and the explanation names the missing opt-in.
#[test]
fn a_network_task_is_placed_only_on_a_node_that_allows_network() {
    let mut net = Net::new();
    net.provider(1, 1_000);
    net.provider(2, 2_000);
    let mut t = terms(12_000_000);
    t.network = true;
    let id = net.submit(0, t);
    net.idle(1_000);
    assert!(net.leased(id).is_empty(), "no node allows network yet");
    let request = crate::block::task_request(&net.state, net.task(id));
    let why = net.state.index.matcher.explain_task(&request);
    assert_eq!(why.first_unmet, Some(aicpw_matcher::Constraint::Network), "{}", why.message);
    assert_eq!(why.failing.network, 2);

    // Node 3 registers without opting in: the task still waits; once it opts in, it runs there.
    net.run(3, TxBody::Bond { amount: Amount::tokens(1_000) }).expect("bond");
    let offer = |allows_network| TxBody::RegisterNode {
        hardware: Hardware { allows_network, ..hardware() },
        x25519_key: key(3).x25519_public(),
        endpoint: "node3".into(),
        price_per_hour: Amount(3_000_000),
    };
    net.run(3, offer(false)).expect("register");
    let open = *net.state.nodes.keys().last().expect("a node");
    net.idle(1_000);
    assert!(net.leased(id).is_empty(), "node 3 has not opted in");
    let TxBody::RegisterNode { hardware, x25519_key, endpoint, price_per_hour } = offer(true)
    else {
        unreachable!("a registration")
    };
    let update = TxBody::UpdateNode { node: open, hardware, x25519_key, endpoint, price_per_hour };
    net.run(3, update).expect("opt in");
    assert_eq!(net.leased(id), vec![open]);
    // A task without network still goes to the cheapest node.
    let plain = net.submit(0, terms(12_000_000));
    assert_ne!(net.leased(plain), vec![open]);
}

/// A container task waits for a node that runs containers, however many cheaper sandbox-only
/// nodes fit otherwise, and the explanation names the missing runtime.
#[test]
fn a_container_task_is_placed_only_on_a_node_that_runs_containers() {
    let mut net = Net::new();
    net.provider(1, 1_000);
    net.provider(2, 2_000);
    let mut t = terms(12_000_000);
    t.runtime = Runtime::Container;
    let id = net.submit(0, t);
    net.idle(1_000);
    assert!(net.leased(id).is_empty(), "no node runs containers yet");
    let request = crate::block::task_request(&net.state, net.task(id));
    let why = net.state.index.matcher.explain_task(&request);
    assert_eq!(why.first_unmet, Some(aicpw_matcher::Constraint::Runtime), "{}", why.message);
    assert_eq!(why.failing.runtime, 2);
    assert!(why.message.contains("--containers"), "{}", why.message);

    net.run(3, TxBody::Bond { amount: Amount::tokens(1_000) }).expect("bond");
    let offer = TxBody::RegisterNode {
        hardware: Hardware { runs_containers: true, ..hardware() },
        x25519_key: key(3).x25519_public(),
        endpoint: "node3".into(),
        price_per_hour: Amount(3_000_000),
    };
    net.run(3, offer).expect("register");
    let engine = *net.state.nodes.keys().last().expect("a node");
    net.idle(1_000);
    assert_eq!(net.leased(id), vec![engine]);
    // A sandbox task still goes to the cheapest node.
    let plain = net.submit(0, terms(12_000_000));
    assert_ne!(net.leased(plain), vec![engine]);
}

#[test]
fn slashing_takes_stake_then_unbonding_and_burns_all_but_the_treasury_share() {
    let mut net = Net::new();
    net.run(0, TxBody::Bond { amount: Amount(1_000) }).expect("bond");
    net.run(0, TxBody::Unbond { amount: Amount(600) }).expect("unbond");
    let supply = net.state.meta.supply;
    let env = net.env();
    let mut delta = crate::delta::Delta::new(&net.state, &env);
    let slash = crate::money::Slash {
        task: None,
        node: NodeId(0),
        owner: key(0).account(),
        offence: crate::money::Offence::CapacityChallengeFailed,
        amount: Amount(700),
        challengers: &[],
    };
    let taken = crate::money::slash(&mut delta, slash).expect("slash");
    let changes = delta.into_changes();
    net.state.commit(changes);
    assert_eq!(taken, Amount(700));
    let account = &net.state.accounts[&key(0).account()];
    assert_eq!((account.staked, account.unbonding_total()), (Amount(0), Amount(300)));
    // 20% to the treasury, the rest (the challengers' share too: there are none) burned.
    assert_eq!(net.state.meta.supply, Amount(supply.0 - 560));
    assert_eq!(net.state.meta.burned, Amount(560));
    net.state.check_invariants().expect("supply shrank by exactly the burn");
}

#[test]
fn the_incremental_root_equals_a_root_computed_from_scratch() {
    let mut net = Net::new();
    net.provider(1, 3_600_000);
    net.submit(0, terms(12_000_000));
    let root = net.state.finalize_root().0;
    assert_eq!(net.rebuilt().finalize_root().0, root);
}

#[derive(Clone, Debug)]
enum Op {
    Transfer(u32, u32, u128),
    Bond(u32, u128),
    Unbond(u32, u128),
    /// Requester, budget, policy (0 none, 1 audit, 2 replicas 2, 3 replicas 3).
    Submit(u32, u128, u8),
    Cancel(u32, u64),
    /// The task's own requester cancels it in the middle of its judging (a no-op otherwise:
    /// `Cancel` covers the rest).
    RequesterCancel(u64),
    /// Task, which running lease, which output (two outputs: lazy and honest).
    Commit(u64, usize, bool),
    /// Task, which committed lease reveals.
    Reveal(u64, usize),
    Heartbeat(u64, usize),
    Fail(u64, usize, bool),
    Accept(u64),
    Dispute(u64, u128),
    RevealAnswer(u64),
    Appeal(u32),
    Vote(u32, u32, bool),
    Rate(u64, u8),
    Idle(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Weighted towards each task's life (commit, reveal), over few task ids, so random
    // sequences reach audits, referees, quorums, disputes, slashes and appeals.
    let outputs = prop_oneof![4 => Just(true), 1 => Just(false)];
    prop_oneof![
        1 => (0..6u32, 0..6u32, 0..10_000_000u128).prop_map(|(a, b, n)| Op::Transfer(a, b, n)),
        1 => (0..6u32, 0..3_000_000_000u128).prop_map(|(a, n)| Op::Bond(a, n)),
        1 => (0..6u32, 0..2_000_000_000u128).prop_map(|(a, n)| Op::Unbond(a, n)),
        3 => (0..5u32, 3_000_000..40_000_000u128, 0..4u8).prop_map(|(a, n, p)| Op::Submit(a, n, p)),
        1 => (0..6u32, 0..5u64).prop_map(|(a, t)| Op::Cancel(a, t)),
        3 => (0..4u64).prop_map(Op::RequesterCancel),
        8 => (0..4u64, 0..3usize, outputs).prop_map(|(t, i, o)| Op::Commit(t, i, o)),
        8 => (0..4u64, 0..3usize).prop_map(|(t, i)| Op::Reveal(t, i)),
        1 => (0..4u64, 0..3usize).prop_map(|(t, i)| Op::Heartbeat(t, i)),
        1 => (0..4u64, 0..3usize, any::<bool>()).prop_map(|(t, i, f)| Op::Fail(t, i, f)),
        2 => (0..4u64).prop_map(Op::Accept),
        2 => (0..4u64, 0..30_000_000u128).prop_map(|(t, b)| Op::Dispute(t, b)),
        1 => (0..4u64).prop_map(Op::RevealAnswer),
        1 => (5..8u32).prop_map(Op::Appeal),
        1 => (5..8u32, 0..8u32, any::<bool>()).prop_map(|(n, v, a)| Op::Vote(n, v, a)),
        1 => (0..4u64, 1..6u8).prop_map(|(t, s)| Op::Rate(t, s)),
        2 => prop_oneof![3 => 0..5_000u64, 1 => 0..90_000u64].prop_map(Op::Idle),
    ]
}

/// The proptest's known answer: every task commits to output "honest" with this salt.
fn answer_salt() -> Hash32 {
    Hash32::of(b"proptest answer salt")
}

fn output(honest: bool) -> &'static [u8] {
    if honest {
        b"honest"
    } else {
        b"lazy"
    }
}

/// The `index`-th lease of the task's current round satisfying `want`.
fn pick(
    net: &Net,
    task: u64,
    index: usize,
    want: impl Fn(&crate::state::Lease) -> bool,
) -> Option<NodeId> {
    let task = net.state.tasks.get(&TaskId(task))?;
    let pending = crate::state::Verdict::Pending;
    let fitting: Vec<NodeId> =
        task.leases.iter().filter(|l| l.verdict == pending && want(l)).map(|l| l.node).collect();
    fitting.get(index % fitting.len().max(1)).copied()
}

/// The `index`-th withheld lease of the task still in its late reveal window.
fn withheld(net: &Net, task: u64, index: usize) -> Option<NodeId> {
    let task = net.state.tasks.get(&TaskId(task))?;
    let late: Vec<NodeId> =
        task.leases.iter().filter(|l| l.late_reveal_deadline().is_some()).map(|l| l.node).collect();
    late.get(index % late.len().max(1)).copied()
}

fn requester_of(net: &Net, task: u64) -> Option<u32> {
    let requester = net.state.tasks.get(&TaskId(task)).map(|task| task.requester)?;
    (0..8).find(|i| key(*i).account() == requester)
}

fn play(net: &mut Net, outputs: &mut std::collections::BTreeMap<(u64, NodeId), bool>, op: Op) {
    let outcome = match op {
        Op::Transfer(a, b, n) => {
            net.run(a, TxBody::Transfer { to: key(b).account(), amount: Amount(n) })
        }
        Op::Bond(a, n) => net.run(a, TxBody::Bond { amount: Amount(n) }),
        Op::Unbond(a, n) => net.run(a, TxBody::Unbond { amount: Amount(n) }),
        Op::Submit(a, n, policy) => {
            let mut t = terms(n);
            t.time_limit_secs = 600;
            t.verification = match policy {
                0 => Verification::Spot,
                1 => Verification::Audit,
                k => Verification::Replicas(k),
            };
            let answer = crate::dispute::answer_commitment(
                &key(a).account(),
                &Hash32::of(output(true)),
                &answer_salt(),
            );
            net.run(a, TxBody::SubmitTask { terms: t, answer_commitment: answer })
        }
        Op::Cancel(a, t) => net.run(a, TxBody::CancelTask { task: TaskId(t) }),
        Op::RequesterCancel(t) => {
            let judged =
                net.state.tasks.get(&TaskId(t)).is_some_and(crate::cancel::under_judgement);
            match requester_of(net, t).filter(|_| judged) {
                Some(who) => net.run(who, TxBody::CancelTask { task: TaskId(t) }),
                None => return,
            }
        }
        Op::Commit(t, i, honest) => match pick(net, t, i, |l| l.is_running()) {
            Some(node) => {
                outputs.insert((t, node), honest);
                net.commit(TaskId(t), node, output(honest))
            }
            None => return,
        },
        Op::Reveal(t, i) => {
            // A committed lease of the round, or else a withheld one opening late.
            let node = pick(net, t, i, |l| l.commitment.is_some() && l.reveal.is_none())
                .or_else(|| withheld(net, t, i));
            match node {
                Some(node) => {
                    let honest = outputs.get(&(t, node)).copied().unwrap_or(true);
                    net.reveal(TaskId(t), node, output(honest))
                }
                None => return,
            }
        }
        Op::Heartbeat(t, i) => match pick(net, t, i, |l| l.is_running()) {
            Some(node) => {
                let who = net.owner(node);
                net.run(who, TxBody::TaskHeartbeat { task: TaskId(t), node, progress_permille: 5 })
            }
            None => return,
        },
        Op::Fail(t, i, task_fault) => match pick(net, t, i, |l| l.is_running()) {
            Some(node) => {
                let reason = if task_fault {
                    FailureReason::TimeLimitExceeded
                } else {
                    FailureReason::ProviderError
                };
                let who = net.owner(node);
                net.run(who, TxBody::ReportFailure { task: TaskId(t), node, reason })
            }
            None => return,
        },
        Op::Accept(t) => match requester_of(net, t) {
            Some(who) => net.run(who, TxBody::AcceptResult { task: TaskId(t) }),
            None => return,
        },
        Op::Dispute(t, bond) => match requester_of(net, t) {
            Some(who) => {
                net.run(who, TxBody::DisputeResult { task: TaskId(t), bond: Amount(bond) })
            }
            None => return,
        },
        Op::RevealAnswer(t) => match requester_of(net, t) {
            Some(who) => net.run(
                who,
                TxBody::RevealAnswer {
                    task: TaskId(t),
                    answer_hash: Hash32::of(output(true)),
                    salt: answer_salt(),
                },
            ),
            None => return,
        },
        Op::Appeal(owner) => {
            let node = net.state.nodes.values().find(|n| n.owner == key(owner).account());
            match node.map(|n| n.id) {
                Some(node) => net.run(owner, TxBody::Appeal { node }),
                None => return,
            }
        }
        Op::Vote(owner, voter, approve) => {
            let node = net.state.nodes.values().find(|n| n.owner == key(owner).account());
            match node.map(|n| n.id) {
                Some(node) => net.run(voter, TxBody::VoteAppeal { node, approve }),
                None => return,
            }
        }
        Op::Rate(t, stars) => match requester_of(net, t) {
            Some(who) => net.run(who, TxBody::RateTask { task: TaskId(t), stars }),
            None => return,
        },
        Op::Idle(ms) => {
            net.idle(ms);
            return;
        }
    };
    drop(outcome);
}

/// Derived bookkeeping agrees with the tables: running counts, the stake at risk and the
/// releases that may be clawed back; and every owner's stake backs both.
pub(crate) fn check_derived(net: &Net) -> Result<(), String> {
    let mut running: std::collections::BTreeMap<NodeId, u32> = Default::default();
    let mut at_risk: std::collections::BTreeMap<aicpw_types::AccountId, u128> = Default::default();
    let mut clawback: std::collections::BTreeMap<aicpw_types::AccountId, u128> = Default::default();
    for task in net.state.tasks.values() {
        let open = !task.state.is_terminal();
        for lease in &task.leases {
            if open && lease.is_running() {
                *running.entry(lease.node).or_default() += 1;
            }
            let live = matches!(
                lease.verdict,
                crate::state::Verdict::Pending | crate::state::Verdict::Upheld
            );
            if (open && live) || lease.is_withheld_pending() {
                let owner = net.state.nodes[&lease.node].owner;
                *at_risk.entry(owner).or_default() +=
                    crate::market::run_price(lease.price_per_hour, &task.terms).0;
                if !lease.released.is_zero() {
                    *clawback.entry(owner).or_default() += lease.released.0;
                }
            }
        }
        if open && task.state == TaskState::Running && task.leases.is_empty() && task.seats == 0 {
            return Err(format!("task {} runs with no lease and no open seat", task.id));
        }
        crate::cancel_tests::check_deferred_cancel(task)?;
    }
    for node in net.state.nodes.values() {
        let count = running.get(&node.id).copied().unwrap_or(0);
        if node.running != count {
            return Err(format!(
                "node {} counts {} running, leases say {count}",
                node.id, node.running
            ));
        }
    }
    if at_risk != net.state.index.at_risk {
        return Err(format!("at risk {:?} != index {:?}", at_risk, net.state.index.at_risk));
    }
    if clawback != net.state.index.clawback {
        return Err(format!("clawback {clawback:?} != index {:?}", net.state.index.clawback));
    }
    // Placement (headroom), releases (`release::backed`), unbonding and withdrawals keep it; only
    // a capacity-challenge slash (off here) could break it.
    for (owner, account) in &net.state.accounts {
        let held = account.staked.0 + account.unbonding_total().0;
        let slashes = at_risk.get(owner).copied().unwrap_or(0) * 20;
        let needed = slashes + clawback.get(owner).copied().unwrap_or(0);
        if held < needed {
            return Err(format!("{owner} holds {held} of stake, {needed} is at risk"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]
    #[test]
    fn invariants_hold_over_random_transaction_sequences(ops in proptest::collection::vec(op(), 1..150)) {
        // A late reveal window and a seat wait of two minutes, so that random sequences reach
        // late reveals, unstaffed rounds and their expiry (deferred cancels included); intervals
        // of a block, so that leases are released money that a verdict may claw back.
        let mut params = Params::default();
        params.verification.late_reveal_window_ms = 120_000;
        params.verification.seat_wait_ms = 120_000;
        params.verification.release_interval_ms = 1_000;
        let mut net = Net::with_params(params);
        net.provider(5, 2_400_000);
        net.provider(6, 3_600_000);
        net.provider(7, 1_800_000);
        let mut outputs = std::collections::BTreeMap::new();
        let mut nonces_before: Vec<u64> = Vec::new();
        for op in ops {
            play(&mut net, &mut outputs, op);
            // Checked after every block inside `Net::block`: supply conserved counting the burn,
            // escrow and bonds consistent.
            let nonces: Vec<u64> = (0..8).map(|i| net.state.accounts.get(&key(i).account()).map_or(0, |a| a.nonce)).collect();
            if !nonces_before.is_empty() {
                prop_assert!(nonces.iter().zip(&nonces_before).all(|(now, was)| now >= was));
            }
            nonces_before = nonces;
            let escrow: u128 = net.state.tasks.values().map(|t| t.escrow.0).sum();
            let open: u128 = net.state.tasks.values().filter(|t| !t.state.is_terminal()).map(|t| t.escrow.0).sum();
            prop_assert_eq!(escrow, open, "escrow is held only by open tasks");
            if let Err(broken) = check_derived(&net) {
                prop_assert!(false, "{}", broken);
            }
        }
        let root = net.state.finalize_root().0;
        let s = &net.state;
        let mut rebuilt = State::from_tables(s.params.clone(), s.meta.clone(), s.accounts.clone(), s.nodes.clone(), s.tasks.clone());
        prop_assert_eq!(rebuilt.finalize_root().0, root);
        prop_assert_eq!(&rebuilt.index.at_risk, &net.state.index.at_risk);
        prop_assert_eq!(&rebuilt.index.clawback, &net.state.index.clawback);
        prop_assert_eq!(&rebuilt.index.withheld, &net.state.index.withheld);
        prop_assert_eq!(&rebuilt.index.node_withheld, &net.state.index.node_withheld);
    }
}
