//! Capacity challenges on the ledger, driven block by block with real answers: issue, commit,
//! draw, open, verify, late, missed, failed, freeze, thaw and slash.

use super::{
    Challenge, ChallengeFailure, ChallengeKind, ChallengeParams, ChallengeSanction,
    ChallengeStatus, OPENINGS_PER_TX_MAX,
};
use crate::state::{NodeStatus, Params};
use crate::{Event, Receipt};
use aicpw_types::codec::Encode;
use aicpw_types::tx::TX_BYTES_MAX;
use aicpw_types::TaskState;
use aicpw_types::{
    Amount, ChallengeId, ComputeUnits, Hardware, Hash32, Keypair, NodeId, Reject, Tx, TxBody,
};
use aicpw_verify::matrix::{commit_product, reference_product};
use aicpw_verify::merkle::TileTree;
use aicpw_verify::puzzle::solve_puzzle;
use aicpw_verify::{HashPuzzle, MatrixChallenge};

/// Rounds every 10 s: for tests of several rounds.
const INTERVAL_MS: u64 = 10_000;
/// Rounds every hour: for tests of one round, so that no next round replaces it midway.
const INTERVAL_MS_QUIET: u64 = 3_600_000;
const N: u32 = 256;

/// The ledger tests' network, with blocks that advance by a given time.
struct Net(crate::tests::Net);

impl std::ops::Deref for Net {
    type Target = crate::tests::Net;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

fn key(i: u32) -> Keypair {
    Keypair::dev(i)
}

fn params() -> Params {
    params_every(INTERVAL_MS)
}

fn quiet() -> Params {
    params_every(INTERVAL_MS_QUIET)
}

fn params_every(interval_ms: u64) -> Params {
    let mut params = Params { node_offline_ms: u64::MAX / 4, ..Params::default() };
    params.challenges = ChallengeParams {
        n_max: N,
        open_count: 8,
        open_window_ms: 5_000,
        puzzle_difficulty: 4,
        puzzle_deadline_ms: 5_000,
        ..ChallengeParams::every(interval_ms)
    };
    params
}

impl Net {
    fn new(params: Params) -> Net {
        params.challenges.validate().expect("test parameters are valid");
        // Only the challenges these tests answer vouch for a node's intervals.
        let mut net = crate::tests::Net::with_params(params);
        net.vouching = false;
        Net(net)
    }

    /// One block `advance_ms` after the last, holding `txs`; a rejected one gives its nonce back.
    fn block(&mut self, advance_ms: u64, txs: Vec<(u32, TxBody)>) -> Vec<Result<Receipt, Reject>> {
        self.0.block_after(advance_ms, txs)
    }

    fn run(&mut self, advance_ms: u64, who: u32, body: TxBody) -> Result<Receipt, Reject> {
        self.block(advance_ms, vec![(who, body)]).remove(0)
    }

    fn step(&mut self, advance_ms: u64) {
        self.block(advance_ms, Vec::new());
    }

    /// Bonds for `nodes` nodes and registers them in one block; returns their ids. `then` rides
    /// in the same block, after the registrations.
    fn provider_then(&mut self, who: u32, nodes: u32, then: Vec<TxBody>) -> Vec<NodeId> {
        let stake = Amount::tokens(1_000 * u64::from(nodes));
        self.run(1, who, TxBody::Bond { amount: stake }).expect("bond");
        let registrations = (0..nodes).map(|i| TxBody::RegisterNode {
            hardware: Hardware { cpu_cores: 8, memory_mb: 16_384, ..Default::default() },
            x25519_key: key(who).x25519_public(),
            endpoint: format!("node-{who}-{i}"),
            price_per_hour: Amount(3_600_000),
        });
        let txs = registrations.chain(then).map(|body| (who, body)).collect();
        for result in self.block(1, txs) {
            result.expect("registered");
        }
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::NodeRegistered { node, .. } => Some(*node),
                _ => None,
            })
            .collect()
    }

    fn provider(&mut self, who: u32, nodes: u32) -> Vec<NodeId> {
        self.provider_then(who, nodes, Vec::new())
    }

    fn matrix(&self, node: NodeId) -> Challenge {
        self.state.nodes[&node].capacity.matrix.clone().expect("a matrix challenge")
    }

    fn puzzle(&self, node: NodeId) -> Challenge {
        self.state.nodes[&node].capacity.puzzle.clone().expect("a puzzle")
    }

    fn staked(&self, who: u32) -> Amount {
        self.state.accounts[&key(who).account()].staked
    }

    fn saw(&self, wanted: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(wanted)
    }

    /// Commits `answer` one millisecond after the challenge, then lets the next block draw.
    fn commit_and_draw(&mut self, who: u32, challenge: &Challenge, answer: &Answer) {
        let body = TxBody::ChallengeCommit { challenge: challenge.id, root: answer.root() };
        self.run(1, who, body).expect("commit");
        self.step(1);
    }

    fn open(&mut self, who: u32, node: NodeId, answer: &Answer, range: std::ops::Range<usize>) {
        let challenge = self.matrix(node);
        let drawn = challenge.drawn_tiles().expect("drawn");
        let body = TxBody::ChallengeOpen {
            challenge: challenge.id,
            first: range.start as u32,
            paths: answer.paths(&drawn[range]),
        };
        self.run(1, who, body).expect("openings accepted");
    }

    /// Answers the node's matrix challenge honestly and fully.
    fn pass(&mut self, who: u32, node: NodeId) {
        let challenge = self.matrix(node);
        let answer = Answer::solve(&challenge, |_| false);
        self.commit_and_draw(who, &challenge, &answer);
        self.open(who, node, &answer, 0..challenge.open_count as usize);
        assert_eq!(self.matrix(node).status, ChallengeStatus::Passed);
    }

    /// Lets the current round run out and the next one start.
    fn miss(&mut self) {
        self.step(self.state.params.challenges.interval_ms + 1);
    }
}

/// A provider's answer: the product (maybe with skipped tiles zeroed) and its tile tree.
struct Answer {
    tree: TileTree,
}

impl Answer {
    fn solve(challenge: &Challenge, skip: impl Fn(u32) -> bool) -> Answer {
        let matrix = challenge.matrix().expect("a matrix challenge");
        let mut product = reference_product(&matrix).expect("small enough");
        skip_tiles(&matrix, &mut product, skip);
        Answer { tree: commit_product(&matrix, &product).expect("tree") }
    }

    fn root(&self) -> Hash32 {
        Hash32(self.tree.root())
    }

    fn paths(&self, tiles: &[u32]) -> Vec<Vec<Hash32>> {
        tiles
            .iter()
            .map(|tile| self.tree.path(*tile).expect("path").into_iter().map(Hash32).collect())
            .collect()
    }
}

/// Zeroes the tiles a lazy provider did not compute.
fn skip_tiles(matrix: &MatrixChallenge, product: &mut [i32], skip: impl Fn(u32) -> bool) {
    let (n, tile, side) = (matrix.n as usize, matrix.tile as usize, matrix.tiles_per_side());
    for index in (0..matrix.tile_count()).filter(|index| skip(*index)) {
        let (row0, column0) = ((index / side) as usize * tile, (index % side) as usize * tile);
        for row in row0..row0 + tile {
            product[row * n + column0..row * n + column0 + tile].fill(0);
        }
    }
}

#[test]
fn every_node_of_an_owner_is_challenged_in_the_same_block() {
    let mut net = Net::new(params());
    let nodes = net.provider(1, 2);
    let other = net.provider(2, 1)[0];
    net.step(1);
    let (first, second) = (net.matrix(nodes[0]), net.matrix(nodes[1]));
    assert_eq!(first.issued_height, second.issued_height);
    assert_ne!(first.seed, second.seed);
    assert_eq!((first.n, first.tile, first.open_count), (N, 16, 8));
    assert_eq!(first.status, ChallengeStatus::Issued);
    assert_eq!(net.puzzle(nodes[0]).kind, ChallengeKind::Puzzle);
    // Both owners' next rounds fall on the network's phase of the interval, once per interval.
    let due = |node: NodeId| net.state.nodes[&node].capacity.due_ms;
    assert_eq!(due(nodes[0]), due(nodes[1]));
    assert_eq!(due(nodes[0]), due(other));
    assert!(due(other) > net.time_ms && due(other) <= net.time_ms + INTERVAL_MS);
    assert!(due(nodes[0]) > net.time_ms && due(nodes[0]) <= net.time_ms + INTERVAL_MS);
}

#[test]
fn nodes_of_different_owners_registered_apart_share_every_later_round() {
    // Sybil owners relaying to one hidden machine: under per-owner phases their rounds fell in
    // different blocks, so the machine answered each in turn and proved its capacity for all.
    let mut net = Net::new(params());
    let owners: Vec<NodeId> = (1..=3)
        .map(|who| {
            let node = net.provider(who, 1)[0];
            net.step(INTERVAL_MS / 7);
            node
        })
        .collect();
    let first: Vec<u64> = owners.iter().map(|n| net.matrix(*n).issued_height).collect();
    assert!(first[0] < first[2], "first rounds follow registration");
    let due: Vec<u64> = owners.iter().map(|n| net.state.nodes[n].capacity.due_ms).collect();
    assert!(due.iter().all(|d| *d == due[0]), "one phase for every owner: {due:?}");
    // The first rounds run out unanswered; an owner whose round is still open when the next
    // falls due waits for it (one round late), so look at the round after.
    let later = due[0] + INTERVAL_MS;
    while net.time_ms < later {
        net.step(INTERVAL_MS / 10);
    }
    net.step(1);
    let next: Vec<Challenge> = owners.iter().map(|n| net.matrix(*n)).collect();
    assert!(next.iter().all(|c| c.issued_height == next[0].issued_height), "one block");
    assert!(
        next[0].issued_ms >= later && next.iter().zip(&first).all(|(c, h)| c.issued_height > *h)
    );
}

#[test]
fn an_honest_node_passes_and_proves_the_median_of_its_scores() {
    let mut net = Net::new(params());
    let node = net.provider(1, 1)[0];
    net.step(1);
    let challenge = net.matrix(node);
    let answer = Answer::solve(&challenge, |_| false);
    net.commit_and_draw(1, &challenge, &answer);
    let drawn = net.matrix(node);
    assert_eq!(drawn.status, ChallengeStatus::Opening);
    assert_eq!(drawn.open_randomness, Some(Hash32::of(&net.height.to_le_bytes())));
    // Openings may come in several transactions, in draw order.
    net.open(1, node, &answer, 0..3);
    assert_eq!(net.matrix(node).opened, 3);
    net.open(1, node, &answer, 3..8);
    let passed = net.matrix(node);
    assert_eq!(passed.opened, 8);
    // 2·256³ operations answered 1 ms after the challenge: 33 GOPS.
    assert_eq!(
        (passed.status, passed.response_ms, passed.units),
        (ChallengeStatus::Passed, 1, ComputeUnits(33))
    );
    assert_eq!(net.state.nodes[&node].proven_units, ComputeUnits(33));
    assert!(net.saw(|e| matches!(e, Event::ChallengePassed { units: ComputeUnits(33), .. })));
    // The next round is sized for what the node proved.
    net.miss();
    let next = net.matrix(node);
    assert_eq!(next.sized_for, ComputeUnits(33));
    assert!(next.id > passed.id);
}

#[test]
fn a_node_whose_commitment_skipped_tiles_fails_when_opened_and_is_slashed() {
    let mut net = Net::new(quiet());
    let node = net.provider(1, 1)[0];
    net.step(1);
    let stake = net.staked(1);
    let challenge = net.matrix(node);
    // Half of C never computed: 8 random openings miss all of it with probability 1/256.
    let lazy = Answer::solve(&challenge, |index| index % 2 == 1);
    net.commit_and_draw(1, &challenge, &lazy);
    net.open(1, node, &lazy, 0..8);
    let failed = net.matrix(node);
    assert_eq!(failed.status, ChallengeStatus::Failed);
    assert_eq!(failed.failure, Some(ChallengeFailure::TileMismatch));
    let slash = params().challenges.slash_failed;
    assert_eq!(net.staked(1), Amount(stake.0 - slash.0));
    // The treasury's share goes to the treasury; the rest, the challenger's share too, is burned.
    let verification = &params().verification;
    let shares = verification.economics.split.split(slash.0).expect("valid split");
    let treasury = net.state.accounts.get(&verification.treasury).map(|a| a.balance);
    assert_eq!(treasury, Some(Amount(shares.treasury)));
    assert_eq!(net.state.meta.burned, Amount(slash.0 - shares.treasury));
    assert!(net.saw(|e| matches!(e, Event::Penalized { task: None, offence, challengers, .. }
        if *offence == crate::money::Offence::CapacityChallengeFailed && challengers.is_empty())));
    assert!(net.saw(|e| matches!(
        e,
        Event::ChallengeFailed {
            sanction: ChallengeSanction::Slash,
            reason: ChallengeFailure::TileMismatch,
            ..
        }
    )));
    let record = &net.state.nodes[&node];
    assert_eq!(record.status, NodeStatus::Frozen);
    assert!(!record.capacity.frozen, "a slashed node waits for arbitration, not for a pass");
    assert_eq!(record.reputation.offences, 1);
}

/// One row per way a round can go wrong, and what it must cost.
#[test]
fn late_withheld_and_malformed_answers_are_judged_by_the_evidence_rule() {
    struct Row {
        name: &'static str,
        act: fn(&mut Net, NodeId),
        status: ChallengeStatus,
        failure: ChallengeFailure,
        sanction: ChallengeSanction,
        slashed: bool,
    }
    let rows = [
        Row {
            name: "no commitment before the deadline",
            act: |net, _| net.step(1_000),
            status: ChallengeStatus::Late,
            failure: ChallengeFailure::Late,
            sanction: ChallengeSanction::LowerReputation,
            slashed: false,
        },
        Row {
            name: "committed but never opened",
            act: |net, node| {
                let challenge = net.matrix(node);
                let answer = Answer::solve(&challenge, |_| false);
                net.commit_and_draw(1, &challenge, &answer);
                net.step(5_001);
            },
            // Absence, not proof of false work: a miss (an honest node may go offline
            // between committing and opening), graded like a late answer.
            status: ChallengeStatus::Late,
            failure: ChallengeFailure::OpeningsWithheld,
            sanction: ChallengeSanction::LowerReputation,
            slashed: false,
        },
        Row {
            name: "a path of the wrong length",
            act: |net, node| {
                let challenge = net.matrix(node);
                let answer = Answer::solve(&challenge, |_| false);
                net.commit_and_draw(1, &challenge, &answer);
                let mut paths = answer.paths(&net.matrix(node).drawn_tiles().expect("drawn"));
                paths[0].pop();
                let body = TxBody::ChallengeOpen { challenge: challenge.id, first: 0, paths };
                net.run(1, 1, body).expect("the transaction is the evidence");
            },
            status: ChallengeStatus::Failed,
            failure: ChallengeFailure::PathMalformed,
            sanction: ChallengeSanction::Slash,
            slashed: true,
        },
    ];
    for row in rows {
        let mut net = Net::new(quiet());
        let node = net.provider(1, 1)[0];
        net.step(1);
        let stake = net.staked(1);
        (row.act)(&mut net, node);
        let challenge = net.matrix(node);
        assert_eq!(
            (challenge.status, challenge.failure),
            (row.status, Some(row.failure)),
            "{}",
            row.name
        );
        let sanction = row.sanction;
        assert!(
            net.saw(|e| matches!(e, Event::ChallengeFailed { sanction: s, .. } if *s == sanction)),
            "{}",
            row.name
        );
        assert_eq!(net.staked(1) < stake, row.slashed, "{}", row.name);
        assert_eq!(net.state.nodes[&node].proven_units, ComputeUnits(0), "{}", row.name);
    }
}

#[test]
fn three_misses_freeze_a_node_a_pass_thaws_it_and_no_run_of_misses_slashes_it() {
    let mut net = Net::new(params());
    let node = net.provider(1, 1)[0];
    net.step(1);
    let score = |net: &Net| net.state.nodes[&node].reputation.score_permille;
    let mut scores = vec![score(&net)];
    for _ in 0..2 {
        net.miss();
        scores.push(score(&net));
        assert_eq!(net.state.nodes[&node].status, NodeStatus::Active);
    }
    assert!(scores.windows(2).all(|pair| pair[1] < pair[0]), "each miss lowers reputation");
    net.miss();
    assert_eq!(net.state.nodes[&node].status, NodeStatus::Frozen);
    assert!(net.state.nodes[&node].capacity.frozen);
    assert!(net.saw(|e| matches!(e, Event::NodeFrozen { .. })));
    // Frozen for misses, it is still challenged, and a pass thaws it.
    assert_eq!(net.matrix(node).status, ChallengeStatus::Issued);
    net.pass(1, node);
    assert_eq!(net.state.nodes[&node].status, NodeStatus::Active);
    assert!(net.saw(|e| matches!(e, Event::NodeThawed { .. })));
    let stake = net.staked(1);
    net.miss();
    assert_eq!(net.matrix(node).status, ChallengeStatus::Issued, "the round after the pass");
    for _ in 0..5 {
        net.miss();
        assert_eq!(net.staked(1), stake, "fewer than six misses in a row are not slashed");
    }
    net.miss();
    // Absence is never slashed: a long run of misses keeps the node frozen and challenged.
    assert_eq!(net.staked(1), stake, "six misses in a row are not slashed either");
    assert!(!net.saw(|e| matches!(e, Event::Penalized { .. })));
    let record = &net.state.nodes[&node];
    assert_eq!((record.status, record.capacity.frozen), (NodeStatus::Frozen, true));
    assert_eq!(record.reputation.offences, 0);
    assert_eq!(net.matrix(node).status, ChallengeStatus::Issued, "still challenged");
    net.pass(1, node);
    assert_eq!(net.state.nodes[&node].status, NodeStatus::Active, "a pass thaws it");
}

#[test]
fn answers_out_of_turn_are_refused_without_changing_anything() {
    let mut net = Net::new(quiet());
    let node = net.provider(1, 1)[0];
    let _ = net.provider(2, 1);
    net.step(1);
    let challenge = net.matrix(node);
    let answer = Answer::solve(&challenge, |_| false);
    let commit = TxBody::ChallengeCommit { challenge: challenge.id, root: answer.root() };
    let unknown = TxBody::ChallengeCommit { challenge: ChallengeId(999), root: answer.root() };
    assert_eq!(net.run(1, 2, commit.clone()).err(), Some(Reject::NotNodeOwner));
    assert_eq!(net.run(1, 1, unknown).err(), Some(Reject::UnknownChallenge));
    let puzzle = TxBody::ChallengeCommit { challenge: net.puzzle(node).id, root: answer.root() };
    assert_eq!(net.run(1, 1, puzzle).err(), Some(Reject::ChallengeKindMismatch));
    // The commitment, then openings before the draw, in the same block.
    let early = TxBody::ChallengeOpen { challenge: challenge.id, first: 0, paths: vec![vec![]] };
    let results = net.block(1, vec![(1, commit.clone()), (1, early)]);
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().err().copied(), Some(Reject::OpeningsNotDrawn));
    assert_eq!(net.run(1, 1, commit).err(), Some(Reject::ChallengeClosed));
    let drawn = net.matrix(node).drawn_tiles().expect("drawn");
    let skipped = TxBody::ChallengeOpen {
        challenge: challenge.id,
        first: 1,
        paths: answer.paths(&drawn[1..2]),
    };
    assert_eq!(net.run(1, 1, skipped).err(), Some(Reject::OpeningsOutOfOrder));
    let too_many = TxBody::ChallengeOpen {
        challenge: challenge.id,
        first: 0,
        paths: answer.paths(&[drawn.clone(), drawn.clone()].concat()),
    };
    assert_eq!(net.run(1, 1, too_many).err(), Some(Reject::InvalidField));
    assert_eq!(net.matrix(node).status, ChallengeStatus::Opening);
}

#[test]
fn checking_openings_is_bounded_per_block() {
    let mut params = quiet();
    params.challenges.verify_work_per_block_max = 4 * u64::from(N);
    let mut net = Net::new(params);
    let node = net.provider(1, 1)[0];
    net.step(1);
    let challenge = net.matrix(node);
    let answer = Answer::solve(&challenge, |_| false);
    net.commit_and_draw(1, &challenge, &answer);
    let drawn = net.matrix(node).drawn_tiles().expect("drawn");
    let part = |first: usize| TxBody::ChallengeOpen {
        challenge: challenge.id,
        first: first as u32,
        paths: answer.paths(&drawn[first..first + 4]),
    };
    let results = net.block(1, vec![(1, part(0)), (1, part(4))]);
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().err().copied(), Some(Reject::ChallengeVerifyBusy));
    // The next block has a fresh budget.
    net.run(1, 1, part(4)).expect("fits the next block");
    assert_eq!(net.matrix(node).status, ChallengeStatus::Passed);
}

#[test]
fn puzzles_are_checked_with_one_hash_and_never_count_as_capacity() {
    let mut net = Net::new(params());
    let node = net.provider(1, 1)[0];
    net.step(1);
    let puzzle = net.puzzle(node);
    let posed = HashPuzzle { seed: puzzle.seed.0, difficulty: puzzle.difficulty };
    let nonce = solve_puzzle(&posed, 0, 1 << 20).expect("valid").expect("solvable");
    let wrong = (0..).find(|n| aicpw_verify::verify_puzzle(&posed, *n).is_err()).expect("a miss");
    let submit = |nonce| TxBody::SubmitPuzzle { challenge: puzzle.id, nonce };
    assert_eq!(net.run(1, 1, submit(wrong)).err(), Some(Reject::PuzzleUnsolved));
    let matrix = TxBody::SubmitPuzzle { challenge: net.matrix(node).id, nonce };
    assert_eq!(net.run(1, 1, matrix).err(), Some(Reject::ChallengeKindMismatch));
    net.run(1, 1, submit(nonce)).expect("solved");
    let record = &net.state.nodes[&node];
    assert_eq!(record.capacity.puzzle.as_ref().map(|p| p.status), Some(ChallengeStatus::Passed));
    assert_eq!((record.capacity.puzzles_solved, record.proven_units), (1, ComputeUnits(0)));
    // Next round: the matrix challenge passes, the puzzle is left to run out.
    net.pass(1, node);
    net.miss();
    net.pass(1, node);
    let score = net.state.nodes[&node].reputation.score_permille;
    net.miss();
    let record = &net.state.nodes[&node];
    assert_eq!(record.capacity.puzzles_missed, 1);
    assert!(record.reputation.score_permille < score, "a missed puzzle lowers reputation");
    assert_eq!(record.capacity.misses, 0, "but it is not a missed capacity challenge");
    assert_eq!(record.capacity.recent_units.len(), 2, "only matrix challenges are scored");
}

#[test]
fn a_claim_sizes_challenges_and_an_inflated_claim_cannot_be_met() {
    let mut net = Net::new(quiet());
    // The first node of the chain is node 0; its owner claims in the block that registers it.
    let claim = TxBody::ClaimCapacity { node: NodeId(0), units: ComputeUnits(1_000) };
    let node = net.provider_then(1, 1, vec![claim])[0];
    let too_much = TxBody::ClaimCapacity { node, units: ComputeUnits(u64::MAX) };
    assert_eq!(net.run(1, 1, too_much).err(), Some(Reject::InvalidField));
    net.step(1);
    let challenge = net.matrix(node);
    assert_eq!(challenge.sized_for, ComputeUnits(1_000));
    // n is capped by `n_max`; the deadline is what 1,000 CU needs for it, plus the allowance.
    assert_eq!(challenge.deadline_ms - challenge.issued_ms, 3 + 500);
    let answer = Answer::solve(&challenge, |_| false);
    net.step(504);
    let late = TxBody::ChallengeCommit { challenge: challenge.id, root: answer.root() };
    assert_eq!(net.run(1, 1, late).err(), Some(Reject::ChallengeClosed));
    assert_eq!(net.matrix(node).status, ChallengeStatus::Late);
}

#[test]
fn no_challenges_are_issued_when_the_interval_is_zero() {
    let mut net = Net::new(Params::default());
    let node = net.provider(1, 1)[0];
    net.step(INTERVAL_MS);
    assert!(net.state.nodes[&node].capacity.matrix.is_none());
    assert_eq!(net.state.meta.next_challenge, 0);
}

#[test]
fn the_state_root_and_indices_rebuild_from_the_tables_mid_challenge() {
    let mut net = Net::new(quiet());
    let node = net.provider(1, 1)[0];
    net.step(1);
    let challenge = net.matrix(node);
    let answer = Answer::solve(&challenge, |_| false);
    net.commit_and_draw(1, &challenge, &answer);
    let root = net.state.finalize_root().0;
    let mut rebuilt = net.rebuilt();
    assert_eq!(rebuilt.finalize_root().0, root);
    let (index, again) = (&net.state.index.challenge, &rebuilt.index.challenge);
    assert_eq!(
        (&index.due, &index.deadlines, &index.nodes),
        (&again.due, &again.deadlines, &again.nodes)
    );
}

#[test]
fn the_largest_opening_transaction_fits_the_transaction_limit() {
    let paths = vec![vec![Hash32([0xff; 32]); 20]; OPENINGS_PER_TX_MAX];
    let tx = Tx {
        chain_id: "c".repeat(crate::check::CHAIN_ID_BYTES_MAX),
        signer: key(1).account(),
        nonce: u64::MAX,
        fee: Amount(u128::MAX),
        body: TxBody::ChallengeOpen { challenge: ChallengeId(u64::MAX), first: u32::MAX, paths },
    };
    let bytes = key(1).sign(tx).to_bytes().len();
    assert!(bytes <= TX_BYTES_MAX, "{bytes} bytes");
}

#[test]
fn a_node_registered_mid_round_waits_and_then_shares_its_owners_next_round() {
    let mut net = Net::new(quiet());
    let first = net.provider(1, 1)[0];
    net.step(1);
    let round = net.matrix(first);
    let body = TxBody::RegisterNode {
        hardware: Hardware { cpu_cores: 8, memory_mb: 16_384, ..Default::default() },
        x25519_key: key(1).x25519_public(),
        endpoint: "late".into(),
        price_per_hour: Amount(3_600_000),
    };
    net.run(1, 1, TxBody::Bond { amount: Amount::tokens(1_000) }).expect("bond");
    net.run(1, 1, body).expect("register");
    let second = *net.state.nodes.keys().last().expect("a node");
    net.step(1);
    // Its owner's round is still open: the new node waits rather than be challenged alone.
    assert!(net.state.nodes[&second].capacity.matrix.is_none());
    net.pass(1, first);
    // The puzzle of the first round is open too; once it runs out, both are challenged at once.
    net.step(params().challenges.puzzle_deadline_ms + 1);
    let (a, b) = (net.matrix(first), net.matrix(second));
    assert!(a.id > round.id);
    assert_eq!((a.issued_height, a.status), (b.issued_height, ChallengeStatus::Issued));
}

#[test]
fn challenges_fit_the_nodes_memory_and_their_deadlines_allow_for_the_quadratic_setup() {
    use super::matrix_shape;
    use aicpw_verify::capacity::challenge_deadline_ms;
    use aicpw_verify::matrix::work;
    let params = ChallengeParams::default();
    // (claimed units, memory MiB, expected n)
    let rows = [
        (ComputeUnits(1), 16_384, 784),
        (ComputeUnits(600), 16_384, 6_688),
        (ComputeUnits(10_000_000), 65_536, 16_384),
        // A quarter of 1 GiB holds C, A and B of n = 6688 at most.
        (ComputeUnits(10_000_000), 1_024, 6_688),
        (ComputeUnits(10_000_000), 0, 16),
    ];
    for (units, memory_mb, expected) in rows {
        let (n, deadline) = matrix_shape(units, memory_mb, &params);
        assert_eq!(n, expected, "{units:?} {memory_mb} MiB");
        assert!(6 * u64::from(n) * u64::from(n) <= (memory_mb << 20) / 4 || n == 16);
        let claim = aicpw_verify::ComputeUnits(units.0);
        let setup = 6 * u64::from(n) * u64::from(n) / params.setup_bytes_per_ms;
        assert_eq!(deadline, challenge_deadline_ms(work(n), claim, 0) + setup);
    }
    // An H100-sized claim at the largest edge: 1.6 s of setup on top of a few milliseconds.
    let (_, deadline) = matrix_shape(ComputeUnits(10_000_000), 65_536, &params);
    assert!((2_000..3_000).contains(&deadline), "{deadline}");
}

#[test]
fn escrow_is_released_per_interval_only_while_the_nodes_challenges_vouch_for_it() {
    use aicpw_types::task::Verification;
    // The same rule for every policy: an audited worker's intervals are released like an
    // unverified one's (and clawed back if its audit goes against it).
    for verification in [Verification::Spot, Verification::Audit] {
        let mut net = Net::new(params());
        let node = net.provider(1, 1)[0];
        net.step(1);
        net.pass(1, node);
        let id = net.submit(0, crate::verification_tests::policy(verification));
        assert_eq!(net.worker(id), node);
        // Heartbeats every second for over a minute, while the rounds every 10 s go unanswered
        // (the block that freezes the node refuses its node heartbeat and so, by nonce, its
        // task's: a beat a second keeps the lease well within its timeout).
        for _ in 0..61 {
            net.0.wait(1_000);
        }
        assert!(net.state.nodes[&node].capacity.misses > 0);
        let unpaid = net.task(id).paid;
        assert_eq!(
            unpaid,
            Amount::ZERO,
            "{verification:?}: no interval verified while challenges fail"
        );
        // Heartbeats every half second until the next round, which the node answers.
        while net.matrix(node).status != ChallengeStatus::Issued {
            net.0.time_ms += 500;
            net.0.keep_alive();
        }
        net.pass(1, node);
        let passed_ms = net.0.time_ms;
        net.0.wait(1_000);
        let task = net.task(id);
        let lease = &task.leases[0];
        assert!(lease.is_running());
        assert!(lease.released_ms > passed_ms, "released at the first beat after the pass");
        let price = net.state.nodes[&node].price_per_hour.0;
        let held = u128::from(lease.released_ms - lease.started_ms);
        let all = Amount((held * price).div_ceil(3_600_000));
        assert_eq!(task.paid, all, "{verification:?}: for all the time since");
        assert_eq!(lease.released, all);
    }
}

#[test]
fn a_registered_gpu_is_challenged_for_its_model_and_offered_only_while_proven() {
    // A CPU registered as an H100 that claims (and could prove) only its CPU units: before, its
    // challenges were sized for the claim and H100 tasks were placed on it as on any H100.
    let mut net = Net::new(params());
    let mut terms = crate::tests::terms(12_000_000);
    terms.resources.gpu_count = 1;
    terms.resources.gpu_model = "H100".into();
    let task = net.0.submit(5, terms);
    let h100 = Hardware {
        cpu_cores: 8,
        memory_mb: 16_384,
        gpu_model: "H100".into(),
        gpu_count: 1,
        gpu_vram_mb: 81_920,
        ..Default::default()
    };
    net.run(1, 1, TxBody::Bond { amount: Amount::tokens(1_000) }).expect("bond");
    let body = TxBody::RegisterNode {
        hardware: h100,
        x25519_key: key(1).x25519_public(),
        endpoint: "gpu".into(),
        price_per_hour: Amount(3_600_000),
    };
    net.run(1, 1, body).expect("registered");
    let node = *net.state.nodes.keys().last().expect("a node");
    net.run(1, 1, TxBody::ClaimCapacity { node, units: ComputeUnits(4_000) }).expect("claim");
    net.step(1);
    let floor = aicpw_verify::capacity::model_floor("H100");
    assert_eq!(net.matrix(node).sized_for, ComputeUnits(floor.0), "sized for the model");
    assert_eq!(net.0.task(task).state, TaskState::Queued, "not placed on an unproven GPU");
    net.pass(1, node);
    net.step(1);
    assert_eq!(net.0.leased(task), vec![node], "placed once the model's floor is proven");
}

#[test]
fn current_challenges_are_listed_a_page_at_a_time_without_gaps_or_repeats() {
    let mut net = Net::new(params());
    let nodes = net.provider(1, 3);
    net.step(1);
    let all: Vec<ChallengeId> =
        net.state.challenges(None, None, 100).iter().map(|c| c.id).collect();
    assert_eq!(all.len(), 6, "a matrix challenge and a puzzle per node");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "ascending ids: {all:?}");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page: Vec<ChallengeId> =
            net.state.challenges(None, after, 4).iter().map(|c| c.id).collect();
        let Some(last) = page.last().copied() else { break };
        paged.extend(page);
        after = Some(last);
    }
    assert_eq!(paged, all);
    // One node's: its two, in order, after a cursor too.
    let own: Vec<ChallengeId> =
        net.state.challenges(Some(nodes[1]), None, 10).iter().map(|c| c.id).collect();
    assert_eq!(own.len(), 2);
    assert!(own[0] < own[1]);
    let rest: Vec<ChallengeId> =
        net.state.challenges(Some(nodes[1]), Some(own[0]), 10).iter().map(|c| c.id).collect();
    assert_eq!(rest, vec![own[1]]);
    assert_eq!(net.state.challenges(Some(nodes[1]), None, 1).len(), 1);
}
