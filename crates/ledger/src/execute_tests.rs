//! `execute_block`, the one way a block is executed: production and replay of the same block
//! agree, and what fails is left out of the block rather than half-applied.

use crate::execute_block;
use crate::tests::{key, Net};
use aicpw_types::{Amount, Reject, TxBody};

#[test]
fn a_produced_block_replays_to_its_root_and_its_failures_are_left_out() {
    let mut net = Net::new();
    let before = net.state.clone();
    let to = key(9).account();
    let pay = |amount| TxBody::Transfer { to, amount: Amount(amount) };
    let good = net.sign(0, pay(5));
    let forged = net.sign(1, pay(6));
    let also_good = net.sign(0, pay(7));
    let gap = {
        net.sign(2, pay(1));
        net.sign(2, pay(2)) // nonce 1 while the account's next is 0
    };
    let txs = vec![good.clone(), forged.clone(), also_good.clone(), gap.clone()];
    // The caller found the second signature bad (a forged one is never looked at).
    let verified = [true, false, true, true];
    let env = {
        net.height = 1;
        net.env()
    };
    let mut producer = before.clone();
    let produced = execute_block(&mut producer, &env, txs, &verified).expect("conserved");
    assert_eq!(produced.included, vec![good, also_good]);
    assert_eq!(
        produced.rejected,
        vec![(forged.id(), Reject::BadSignature), (gap.id(), Reject::NonceGap)]
    );
    assert_eq!(producer.accounts[&to].balance, Amount(12));
    assert_eq!(producer.accounts[&key(1).account()].nonce, 0, "the forged tx changed nothing");

    // Another validator (or a restart) executes the block's content: same root, nothing left out.
    let mut replica = before;
    let content = produced.included.clone();
    let replayed = execute_block(&mut replica, &env, content, &[true, true]).expect("conserved");
    assert!(replayed.rejected.is_empty());
    assert_eq!(replayed.state_root, produced.state_root);
    assert_eq!(replayed.changed, produced.changed);
    replica.check_invariants().expect("invariants hold");
}
