//! One signature rule for every check. The signatures that tell Ed25519 verifiers apart (small-order
//! and mixed-order keys and nonce points, non-canonical encodings and scalars, as classified in
//! "Taming the many EdDSAs", Chalkias, Garillot and Nikolaenko, 2020) are built here from their
//! definitions; each must get the same answer alone and in every batch, and a block holding the
//! accepted ones must replay on restart to the state its producer committed.

mod support;

use aicpw_types::tx::verify_batch;
use aicpw_types::{AccountId, Amount, Keypair, Reject, SignedTx, Tx, TxBody};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::{EdwardsPoint, Scalar};
use sha2::{Digest, Sha512};
use support::{tx, Node};

/// The order of the prime-order subgroup, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// A point of order 8: adding it to a key or nonce point leaves the cofactored equation unchanged.
fn torsion() -> EdwardsPoint {
    EIGHT_TORSION[1]
}

fn scalar(label: &str) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&Sha512::digest(label.as_bytes()).into())
}

/// The challenge `k = H(R || A || M)` of RFC 8032.
fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let digest = Sha512::new().chain_update(r).chain_update(a).chain_update(message).finalize();
    Scalar::from_bytes_mod_order_wide(&digest.into())
}

/// A signature `(R, s)` with `s = r + k·a` over `R` as encoded by `r_bytes` (which may encode
/// `[r]B` plus a small-order point, or use a non-canonical encoding).
fn signed(tx: Tx, a: Scalar, r: Scalar, r_bytes: [u8; 32]) -> SignedTx {
    let k = challenge(&r_bytes, &tx.signer.0, &tx.signing_bytes());
    let s = r + k * a;
    signature(tx, r_bytes, s.to_bytes())
}

fn signature(tx: Tx, r: [u8; 32], s: [u8; 32]) -> SignedTx {
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&r);
    signature[32..].copy_from_slice(&s);
    SignedTx { tx, signature }
}

/// Adds `L` to a canonical scalar: the same value mod `L`, as a non-canonical encoding.
fn plus_l(s: [u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// A field element `y < 19` written as `y + p`: a non-canonical encoding of the same point.
fn y_plus_p(y: u8) -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xed + y;
    bytes[31] = 0x7f;
    bytes
}

struct Case {
    name: &'static str,
    tx: SignedTx,
    /// The rule: ZIP-215 (cofactored, canonical `s`, any point encoding), no small-order key.
    valid: bool,
}

/// One case per kind of signature that Ed25519 verifiers disagree on, each signed by its own
/// account, as that account's transaction number `nonce`.
fn cases(nonce: u64) -> Vec<Case> {
    let recipient = Keypair::dev(9).account();
    let body = |i: u128| TxBody::Transfer { to: recipient, amount: Amount(1 + i) };
    let mut cases = Vec::new();
    let mut add = |name, valid, make: &dyn Fn(u128) -> SignedTx| {
        let tx = make(cases.len() as u128);
        cases.push(Case { name, tx, valid });
    };
    let key_of = |point: EdwardsPoint| AccountId(point.compress().to_bytes());
    let prime_key = |label: &str| {
        let a = scalar(label);
        (a, key_of(ED25519_BASEPOINT_POINT * a))
    };

    add("honest", true, &|i| {
        let (a, key) = prime_key("honest");
        let r = scalar("honest r");
        signed(tx(key, nonce, body(i)), a, r, (ED25519_BASEPOINT_POINT * r).compress().to_bytes())
    });
    add("mixed-order R (cofactorless checks refuse it)", true, &|i| {
        let (a, key) = prime_key("mixed r");
        let r = scalar("mixed r nonce");
        let point = ED25519_BASEPOINT_POINT * r + torsion();
        signed(tx(key, nonce, body(i)), a, r, point.compress().to_bytes())
    });
    add("mixed-order key A, k·T not zero (cofactorless checks refuse it)", true, &|i| {
        let a = scalar("mixed a");
        let key = key_of(ED25519_BASEPOINT_POINT * a + torsion());
        // Find a nonce whose challenge leaves a small-order part in k·A, so only the cofactored
        // equation holds.
        (0u32..)
            .map(|n| {
                let r = scalar(&format!("mixed a nonce {n}"));
                signed(tx(key, nonce, body(i)), a, r, (ED25519_BASEPOINT_POINT * r).compress().0)
            })
            .find(|signed| {
                let k = challenge(
                    signed.signature[..32].try_into().expect("32 bytes"),
                    &key.0,
                    &signed.tx.signing_bytes(),
                );
                !k.to_bytes()[0].is_multiple_of(8)
            })
            .expect("one nonce in eight works")
    });
    add("mixed-order key A and mixed-order R", true, &|i| {
        let a = scalar("mixed both");
        let key = key_of(ED25519_BASEPOINT_POINT * a + torsion());
        let r = scalar("mixed both nonce");
        let point = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[3];
        signed(tx(key, nonce, body(i)), a, r, point.compress().to_bytes())
    });
    add("R a small-order point in a non-canonical encoding (y = p + 1)", true, &|i| {
        let (a, key) = prime_key("non-canonical r");
        signed(tx(key, nonce, body(i)), a, Scalar::ZERO, y_plus_p(1))
    });
    add("R the identity with the sign bit of x = 0 set", true, &|i| {
        let (a, key) = prime_key("negative zero r");
        let mut r_bytes = EdwardsPoint::default().compress().to_bytes();
        r_bytes[31] |= 0x80;
        signed(tx(key, nonce, body(i)), a, Scalar::ZERO, r_bytes)
    });
    add("small-order key and R, s = 0 (valid for every message)", false, &|i| {
        let key = key_of(EIGHT_TORSION[1]);
        signature(tx(key, nonce, body(i)), EIGHT_TORSION[2].compress().0, [0; 32])
    });
    add("identity key, identity R, s = 0", false, &|i| {
        let key = key_of(EdwardsPoint::default());
        signature(tx(key, nonce, body(i)), EdwardsPoint::default().compress().0, [0; 32])
    });
    add("small-order key in a non-canonical encoding (y = p), s = 0", false, &|i| {
        let key = AccountId(y_plus_p(0));
        signature(tx(key, nonce, body(i)), EdwardsPoint::default().compress().0, [0; 32])
    });
    add("s + L: a non-canonical scalar", false, &|i| {
        let (a, key) = prime_key("s plus l");
        let r = scalar("s plus l nonce");
        let honest =
            signed(tx(key, nonce, body(i)), a, r, (ED25519_BASEPOINT_POINT * r).compress().0);
        let s = plus_l(honest.signature[32..].try_into().expect("32 bytes"));
        signature(honest.tx, honest.signature[..32].try_into().expect("32 bytes"), s)
    });
    add("R not on the curve", false, &|i| {
        let (a, key) = prime_key("r off curve");
        let off_curve = (2u8..)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none())
            .expect("some small y is not on the curve");
        signed(tx(key, nonce, body(i)), a, Scalar::ONE, off_curve)
    });
    add("a signature of another message", false, &|i| {
        let (a, key) = prime_key("other message");
        let r = scalar("other message nonce");
        let mut other =
            signed(tx(key, nonce, body(i)), a, r, (ED25519_BASEPOINT_POINT * r).compress().0);
        other.tx.nonce = nonce + 1;
        other
    });
    cases
}

/// `count` honest transfers from each of the dev accounts 10 to 14.
fn honest_transfers(count: u64) -> Vec<SignedTx> {
    let to = Keypair::dev(8).account();
    (10..15)
        .flat_map(|i| {
            let key = Keypair::dev(i);
            (0..count).map(move |nonce| {
                key.sign(tx(key.account(), nonce, TxBody::Transfer { to, amount: Amount(1) }))
            })
        })
        .collect()
}

#[test]
fn the_constructed_vectors_are_what_they_claim() {
    assert_eq!(Scalar::from_bytes_mod_order(L), Scalar::ZERO, "L is the group order");
    assert!(EIGHT_TORSION[1].is_small_order() && !EIGHT_TORSION[1].is_identity());
    let identity = CompressedEdwardsY(y_plus_p(1)).decompress().expect("p + 1 decodes");
    assert!(identity.is_identity(), "y = p + 1 is a non-canonical encoding of the identity");
    for case in cases(0) {
        let r = CompressedEdwardsY(case.tx.signature[..32].try_into().expect("32 bytes"));
        if let Some(point) = r.decompress() {
            let canonical = point.compress() == r;
            let mixed = !point.is_small_order() && !point.is_torsion_free();
            assert!(
                case.name.contains("non-canonical") || case.name.contains("sign bit") || canonical
            );
            assert_eq!(mixed, case.name.contains("mixed-order R"), "{}", case.name);
        }
    }
}

#[test]
fn every_vector_gets_one_answer_alone_and_in_every_batch() {
    let cases = cases(0);
    for case in &cases {
        assert_eq!(case.tx.verify_signature(), case.valid, "alone: {}", case.name);
        assert_eq!(verify_batch(std::slice::from_ref(&case.tx)), [case.valid], "{}", case.name);
    }
    // Batches mix the vectors with honest transfers; the batch's random weights differ on every
    // run, which is what made a cofactorless batch accept a mixed-order R only sometimes.
    let honest = honest_transfers(8);
    for round in 0..64 {
        let mut batch = honest.clone();
        let mut expected = vec![true; batch.len()];
        for (n, case) in cases.iter().enumerate().filter(|(n, c)| c.valid || (round + n) % 5 == 0) {
            let at = (n * 7 + round) % batch.len();
            batch.insert(at, case.tx.clone());
            expected.insert(at, case.valid);
        }
        assert_eq!(verify_batch(&batch), expected, "round {round}");
        let only_valid: Vec<SignedTx> =
            cases.iter().filter(|c| c.valid).map(|c| c.tx.clone()).collect();
        assert!(verify_batch(&only_valid).iter().all(|ok| *ok), "round {round}");
    }
}

/// Forgeries spread over a batch larger than one batch group, in the first and last places, in
/// neighbouring places of one small group and alone in others: each answer is its own signature's,
/// whatever the group that failed around it.
#[test]
fn forged_signatures_in_a_large_batch_fail_alone() {
    let honest = honest_transfers(60);
    assert!(honest.len() > 2 * aicpw_types::tx::BATCH_GROUP, "{} transfers", honest.len());
    for forged_at in
        [vec![], vec![0], vec![honest.len() - 1], vec![8, 9, 10], vec![3, 70, 71, 150, 299]]
    {
        let mut batch = honest.clone();
        let mut expected = vec![true; batch.len()];
        for &at in &forged_at {
            batch[at].signature[40] ^= 1;
            expected[at] = false;
        }
        assert_eq!(verify_batch(&batch), expected, "forged at {forged_at:?}");
    }
}

#[test]
fn the_ledger_applies_the_same_rule_as_the_batches() {
    let genesis = aicpw_ledger::Genesis {
        chain_id: aicpw_node::DEV_CHAIN_ID.into(),
        params: aicpw_ledger::Params::default(),
        accounts: cases(0).iter().map(|c| (c.tx.tx.signer, Amount::tokens(1))).collect(),
    };
    let mut state = aicpw_ledger::State::genesis(&genesis);
    let env = aicpw_types::BlockEnv {
        chain_id: genesis.chain_id.clone(),
        height: 1,
        time_ms: 1_000,
        proposer: Keypair::dev(0).account(),
        randomness: aicpw_types::Hash32::default(),
    };
    for case in cases(0) {
        let applied = aicpw_ledger::apply(&mut state, &case.tx, &env);
        let expected = if case.valid { Ok(()) } else { Err(Reject::BadSignature) };
        assert_eq!(applied.map(|_| ()), expected, "{}", case.name);
    }
}

/// The attack of the issue: signatures that a cofactorless batch accepts only sometimes go into
/// blocks of the real node; the node is stopped and started again on its redb files, which
/// re-executes the blocks after its last checkpoint, and a full replay must reach the same root.
#[test]
fn blocks_holding_edge_case_signatures_replay_to_the_state_their_producer_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(dir.path());
    let funder = Keypair::dev(5);
    let first = cases(0);
    for (nonce, case) in first.iter().enumerate() {
        let fund = TxBody::Transfer { to: case.tx.tx.signer, amount: Amount::tokens(1) };
        let funding = funder.sign(tx(funder.account(), nonce as u64, fund));
        node.submit(&funding, true).expect("the funding transfer commits");
    }
    // Each accepted vector commits in its own block, alone, then all of them again (next nonce)
    // behind a crowd of honest transfers, in one block the producer verifies in parallel batches.
    for case in &first {
        let answer = node.submit(&case.tx, true);
        if case.valid {
            let committed = answer.unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(committed["tx_id"], case.tx.id().to_string(), "{}", case.name);
        } else {
            assert_eq!(answer.err(), Some(Reject::BadSignature), "{}", case.name);
        }
    }
    // Then each accepted vector again (nonce 1), among many honest transfers sent at once: the
    // producer takes them in whatever blocks they arrive, verified in parallel batches.
    let crowd: Vec<SignedTx> = honest_transfers(60)
        .into_iter()
        .chain(cases(1).into_iter().filter(|c| c.valid).map(|c| c.tx))
        .collect();
    for signed in &crowd {
        node.submit(signed, false).expect("admitted");
    }
    let committed = |who: &AccountId| {
        node.get(&format!("/v1/accounts/{who}"))["nonce"].as_u64().expect("nonce")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while crowd.iter().any(|t| committed(&t.tx.signer) <= t.tx.nonce) {
        assert!(std::time::Instant::now() < deadline, "the crowd did not commit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let head_root = node.shared.chain().head().expect("head").state_root;
    drop(node);

    // `node start` again: the blocks since the last checkpoint are executed once more.
    let node = Node::start(dir.path());
    let chain = node.shared.chain();
    assert_eq!(chain.head().expect("head").state_root, head_root);
    assert_eq!(chain.replay().expect("the block log replays"), head_root);
}
