//! Power cuts over a disk that keeps only what was synced.
//!
//! Killing the process is no durability test: the operating system's page cache outlives it, so
//! a node that never called fsync would pass. Here the node's two redb files live on [`Disk`]s
//! that keep each write in a volatile cache until an fsync (`sync_data`) moves it to the platter;
//! a power cut throws the cache away (or, torn, keeps any part of it). The node runs through its
//! service (`Shared`: mempool, block producer, the commit waiters that answer `POST
//! /v1/tx?wait=true`), the power fails after a chosen disk operation, and the node restarted on
//! what the platters hold must have every transfer it acknowledged.

use aicpw_ledger::Genesis;
use aicpw_node::content::Content;
use aicpw_node::db::Db;
use aicpw_node::{dev_genesis, Chain, Shared, StorePolicy};
use aicpw_types::{AccountId, Amount, Keypair, Tx, TxBody};
use redb::StorageBackend;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// A redb file's storage: the platter, and the writes since the last fsync in order.
#[derive(Clone, Default)]
struct File {
    platter: Vec<u8>,
    cache: Vec<Write>,
}

#[derive(Clone)]
enum Write {
    At(u64, Vec<u8>),
    Len(u64),
}

impl Write {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Write::At(offset, data) => {
                let (start, end) = (*offset as usize, *offset as usize + data.len());
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[start..end].copy_from_slice(data);
            }
            Write::Len(len) => bytes.resize(*len as usize, 0),
        }
    }
}

/// The machine's files, its disk operations so far, and when its power fails.
#[derive(Default)]
struct Machine {
    files: [File; 2],
    /// What a reader sees of each file: its platter with its cached writes over it.
    views: [Vec<u8>; 2],
    /// Writes, length changes and fsyncs so far...
    ops: u64,
    /// ...and which of them were of `state.redb`.
    state_ops: Vec<u64>,
    /// The power fails right after this many of them returned: nothing more is written.
    cut_after: Option<u64>,
    off: bool,
    /// A file whose fsync returns without syncing: the fsync removed.
    no_fsync: Option<usize>,
}

/// The chain's block log, `chain.redb`.
const CHAIN: usize = 0;
/// The state checkpoints, `state.redb`.
const STATE: usize = 1;

#[derive(Clone, Default)]
struct Power(Arc<Mutex<Machine>>);

/// One file of the machine, as redb sees it.
#[derive(Debug)]
struct Disk {
    power: Power,
    file: usize,
}

impl std::fmt::Debug for Power {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Power")
    }
}

fn power_cut() -> io::Error {
    io::Error::other("the power is off")
}

impl Power {
    fn machine(&self) -> MutexGuard<'_, Machine> {
        self.0.lock().expect("no panics while locked")
    }

    fn disk(&self, file: usize) -> Disk {
        Disk { power: self.clone(), file }
    }

    /// The machine after its power came back: each file holds its platter plus the cached writes
    /// that `reached` says got there before the cut (none, or any part of them). A file's length
    /// is metadata: each change of it (a `set_len`, a write past the end) landed whole or not at
    /// all; each 512-byte sector of a write's data landed or not, and what lies past the length
    /// is gone.
    fn restart(&self, mut reached: impl FnMut() -> bool) -> Power {
        let machine = self.machine();
        let files = machine.files.clone().map(|file| {
            let mut platter = file.platter;
            let mut len = platter.len();
            for write in &file.cache {
                match write {
                    Write::Len(new) => {
                        if reached() {
                            len = *new as usize;
                            platter.truncate(len);
                        }
                    }
                    Write::At(offset, data) => {
                        let end = *offset as usize + data.len();
                        if end > len && reached() {
                            len = end;
                        }
                        for sector in sectors(*offset, data) {
                            if reached() {
                                sector.apply(&mut platter);
                            }
                        }
                    }
                }
            }
            platter.resize(len, 0);
            File { platter, cache: Vec::new() }
        });
        let views = files.clone().map(|f| f.platter);
        Power(Arc::new(Mutex::new(Machine { files, views, ..Machine::default() })))
    }
}

/// A write's data split into the 512-byte sectors a disk writes atomically.
fn sectors(offset: u64, data: &[u8]) -> Vec<Write> {
    const SECTOR: u64 = 512;
    let mut parts = Vec::new();
    let (mut at, end) = (offset, offset + data.len() as u64);
    while at < end {
        let next = ((at / SECTOR + 1) * SECTOR).min(end);
        let range = (at - offset) as usize..(next - offset) as usize;
        parts.push(Write::At(at, data[range].to_vec()));
        at = next;
    }
    parts
}

impl Disk {
    fn on(&self) -> Result<MutexGuard<'_, Machine>, io::Error> {
        let machine = self.power.machine();
        if machine.off {
            return Err(power_cut());
        }
        Ok(machine)
    }

    /// Does one operation that changes the disk, then cuts the power if its time came.
    fn change(&self, op: impl FnOnce(&mut Machine)) -> Result<(), io::Error> {
        let mut machine = self.on()?;
        op(&mut machine);
        machine.ops += 1;
        if self.file == STATE {
            let op = machine.ops;
            machine.state_ops.push(op);
        }
        if machine.cut_after == Some(machine.ops) {
            machine.off = true;
        }
        Ok(())
    }

    fn write_cached(&self, write: Write) -> Result<(), io::Error> {
        self.change(|machine| {
            write.apply(&mut machine.views[self.file]);
            machine.files[self.file].cache.push(write);
        })
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.on()?.views[self.file].len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        let machine = self.on()?;
        let view = &machine.views[self.file];
        let start = offset as usize;
        view.get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.write_cached(Write::Len(len))
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.write_cached(Write::At(offset, data.to_vec()))
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        self.change(|machine| {
            if machine.no_fsync != Some(self.file) {
                let file = &mut machine.files[self.file];
                file.platter = machine.views[self.file].clone();
                file.cache.clear();
            }
        })
    }
}

/// Signers of the transfers, and where they send them.
const SIGNERS: [u32; 3] = [1, 2, 3];
const RECIPIENT: u32 = 9;
/// Past `CHECKPOINT_BLOCKS_MAX`, so the runs cut the power around a state checkpoint too.
const BLOCKS: u64 = 270;

fn transfer(signer: u32, nonce: u64) -> aicpw_types::SignedTx {
    let key = Keypair::dev(signer);
    key.sign(Tx {
        chain_id: aicpw_node::DEV_CHAIN_ID.into(),
        signer: key.account(),
        nonce,
        fee: Amount(10),
        body: TxBody::Transfer { to: Keypair::dev(RECIPIENT).account(), amount: Amount(1) },
    })
}

/// What the node acknowledged before the power failed: per signer, its acknowledged transfers
/// (nonces 0, 1, ...); and the disk operations after redb created the files: by the time the
/// chain was open, those of state checkpoints after it, and in all.
struct Run {
    acknowledged: Vec<(AccountId, u64)>,
    opened: u64,
    checkpoints: Vec<u64>,
    ops: u64,
}

/// Runs the node on `power` until the power fails `cut` disk operations after redb created its
/// files (`Db::open` creates a file under another name and renames it once redb is done, so a cut
/// while redb creates it leaves no file), or until `blocks` blocks are made. Each block takes one
/// transfer of every signer, submitted as `POST /v1/tx?wait=true` does; a transfer is
/// acknowledged when its waiter is answered. Once the chain is open, `no_fsync` names a file whose
/// fsyncs do nothing.
fn run(power: &Power, cut: Option<u64>, blocks: u64, no_fsync: Option<usize>) -> Run {
    let mut acknowledged: Vec<(AccountId, u64)> =
        SIGNERS.iter().map(|s| (Keypair::dev(*s).account(), 0)).collect();
    let db = Db::on(power.disk(CHAIN), power.disk(STATE)).expect("redb creates the files");
    let created = power.machine().ops;
    power.machine().cut_after = cut.map(|k| created + k);
    let ops = || power.machine().ops - created;
    let done = |acknowledged, opened| {
        let state_ops = power.machine().state_ops.clone();
        let checkpoints = state_ops.iter().filter_map(|op| op.checked_sub(created + opened));
        let checkpoints = checkpoints.filter(|op| *op > 0).map(|op| op + opened);
        Run { acknowledged, opened, checkpoints: checkpoints.collect(), ops: ops() }
    };
    let Ok(chain) = Chain::on(db, Some(&dev_genesis())) else { return done(acknowledged, ops()) };
    let opened = ops();
    power.machine().no_fsync = no_fsync;
    let content = tempfile::tempdir().expect("temp dir");
    let content = Content::open(content.path(), StorePolicy::default()).expect("content store");
    let shared = Shared::new(chain, content, Keypair::dev(0).account());
    for nonce in 0..blocks {
        let mut waiters: Vec<_> = SIGNERS
            .iter()
            .map(|s| shared.submit(transfer(*s, nonce), true).expect("admitted"))
            .map(|(_, waiter)| waiter.expect("a waiter was asked for"))
            .collect();
        if shared.produce_once().is_err() {
            break;
        }
        for (waiter, (_, count)) in waiters.iter_mut().zip(&mut acknowledged) {
            if matches!(waiter.try_recv(), Ok(Ok(_))) {
                *count = nonce + 1;
            }
        }
    }
    drop(shared); // waits for the checkpoint writer
    done(acknowledged, opened)
}

/// Restarts the node on `power` (a new one from `genesis` if no chain was created) and returns,
/// per signer, how many of its transfers the chain holds; checks on the way that the chain opens,
/// replays to its head's root, holds each transfer once, keeps its invariants and makes the next
/// block.
fn restart(power: &Power, genesis: &Genesis) -> Vec<(AccountId, u64)> {
    let db = Db::on(power.disk(CHAIN), power.disk(STATE)).expect("the files open after a cut");
    let mut chain = Chain::on(db, Some(genesis)).expect("the chain opens after a cut");
    if let Some(head) = chain.head() {
        assert_eq!(chain.replay().expect("replays"), head.state_root, "replay reaches the head");
    }
    chain.state().check_invariants().expect("invariants hold");
    let state = chain.state();
    let held: Vec<(AccountId, u64)> = SIGNERS
        .iter()
        .map(|s| Keypair::dev(*s).account())
        .map(|a| (a, state.accounts.get(&a).map_or(0, |account| account.nonce)))
        .collect();
    let recipient = Keypair::dev(RECIPIENT).account();
    let sent: u64 = held.iter().map(|(_, n)| n).sum();
    let accounts = &chain.genesis().accounts;
    let start = accounts.iter().find(|(a, _)| *a == recipient).map(|(_, b)| b.0);
    let expected = start.map(|b| Amount(b + u128::from(sent)));
    assert_eq!(state.accounts.get(&recipient).map(|a| a.balance), expected, "each transfer once");
    let next = chain.height() + 1;
    let proposer = Keypair::dev(0).account();
    let made = chain.produce(vec![transfer(SIGNERS[0], held[0].1)], 1 << 50, proposer);
    assert_eq!(made.expect("the restarted node makes blocks").header.height, next);
    held
}

/// The transfers acknowledged before the cut that the restarted chain lacks.
fn lost(run: &Run, held: &[(AccountId, u64)]) -> u64 {
    let each = run.acknowledged.iter().zip(held);
    each.map(|((_, acknowledged), (_, held))| acknowledged.saturating_sub(*held)).sum()
}

/// The operations to cut the power after: every one while the chain is created and in its first
/// ten blocks (each block's commit makes the same kinds of operations), every one of a state
/// checkpoint and the one before it, the last 5, and every 199th in between.
fn cut_points(whole: &Run) -> Vec<u64> {
    let (early, total) = (whole.opened + 10 * whole.ops / BLOCKS, whole.ops);
    let checkpoint = |k: u64| whole.checkpoints.iter().any(|op| *op == k || *op == k + 1);
    let cuts = (1..=total).filter(|k| *k <= early || checkpoint(*k) || total - k < 5);
    cuts.chain((0..total).step_by(199).skip(1)).collect()
}

/// A fair coin from a seed, the same flips every run.
struct Coin {
    seed: u64,
    flips: u64,
}

impl Coin {
    fn flip(&mut self) -> bool {
        self.flips += 1;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(&self.flips.to_le_bytes());
        hasher.finalize().as_bytes()[0] & 1 == 1
    }
}

#[test]
fn a_power_cut_at_any_point_loses_no_acknowledged_transfer() {
    let whole = run(&Power::default(), None, BLOCKS, None);
    assert!(whole.acknowledged.iter().all(|(_, n)| *n == BLOCKS), "an uncut run acknowledges all");
    let cuts = cut_points(&whole);
    for cut in &cuts {
        let power = Power::default();
        let before = run(&power, Some(*cut), BLOCKS, None);
        let held = restart(&power.restart(|| false), &dev_genesis());
        assert_eq!(
            lost(&before, &held),
            0,
            "cut after operation {cut}: acknowledged transfers lost"
        );
    }
    assert!(whole.checkpoints.len() > 1, "the run wrote a state checkpoint");
    let ops = whole.ops;
    eprintln!("{} power cuts over {ops} disk operations: nothing acknowledged lost", cuts.len());
}

#[test]
fn a_power_cut_that_lands_any_part_of_the_unsynced_writes_loses_no_acknowledged_transfer() {
    let whole = run(&Power::default(), None, BLOCKS, None);
    for cut in cut_points(&whole) {
        let power = Power::default();
        let before = run(&power, Some(cut), BLOCKS, None);
        let mut coin = Coin { seed: cut, flips: 0 };
        let held = restart(&power.restart(|| coin.flip()), &dev_genesis());
        assert_eq!(lost(&before, &held), 0, "torn cut after operation {cut}: transfers lost");
    }
}

#[test]
fn without_the_block_logs_fsync_a_power_cut_loses_acknowledged_transfers() {
    let power = Power::default();
    let before = run(&power, None, 200, Some(CHAIN));
    assert!(before.acknowledged.iter().all(|(_, n)| *n == 200), "all were acknowledged");
    let held = restart(&power.restart(|| false), &dev_genesis());
    assert_eq!(lost(&before, &held), 600, "every transfer since the chain opened is lost");

    // Past a checkpoint, the state (synced) is ahead of the log (not): the node refuses to start.
    let power = Power::default();
    run(&power, None, BLOCKS, Some(CHAIN));
    let power = power.restart(|| false);
    let db = Db::on(power.disk(CHAIN), power.disk(STATE)).expect("the files open");
    let refused = Chain::on(db, None).err().expect("a state ahead of its log is refused");
    assert!(refused.to_string().contains("committed blocks were lost"), "{refused}");

    // The checkpoints need no fsync of their own for this: the block log is replayed.
    let power = Power::default();
    let before = run(&power, None, BLOCKS, Some(STATE));
    let held = restart(&power.restart(|| false), &dev_genesis());
    assert_eq!(lost(&before, &held), 0, "the block log alone keeps what was acknowledged");
}

#[test]
fn a_power_cut_while_the_chain_is_created_leaves_a_directory_created_again() {
    // Another genesis than the one cut short: fewer accounts, other balances.
    let mut other = dev_genesis();
    other.accounts.truncate(RECIPIENT as usize + 1);
    other.accounts.iter_mut().for_each(|(_, amount)| amount.0 *= 2);
    let whole = run(&Power::default(), None, 1, None);
    for cut in 1..=whole.opened {
        let power = Power::default();
        run(&power, Some(cut), 1, None);
        let power = power.restart(|| false);
        let first = restart(&power, &other);
        // Closed and opened again, it is the chain of the second genesis with its block.
        let second = restart(&power, &other);
        assert_eq!(second[0].1, first[0].1 + 1, "cut after operation {cut}: the block is kept");
    }
}

/// Why `Db::open` creates a file under another name and renames it: redb alone, cut while it
/// creates a file, can leave one it refuses to open.
#[test]
fn redb_cut_while_it_creates_a_file_can_leave_one_it_cannot_open() {
    let refused = (1..=9).filter(|cut| {
        let power = Power::default();
        power.machine().cut_after = Some(*cut);
        assert!(Db::on(power.disk(CHAIN), power.disk(STATE)).is_err(), "cut before the end");
        let power = power.restart(|| false);
        Db::on(power.disk(CHAIN), power.disk(STATE)).is_err()
    });
    assert!(refused.count() > 0, "redb's creation survives every cut: the rename can go");
}
