//! AICPW validators: the ledger ordered by Commonware's simplex BFT consensus, with the BLS12-381
//! threshold VRF scheme, whose per-view seed is the block randomness (the beacon).
//!
//! The ledger stays engine-agnostic: a leader builds a block from its mempool with
//! [`aicpw_ledger::execute_block`], the other validators verify it by re-executing it on the
//! parent's state, and every validator applies a block once, in height order, when it is
//! finalized ([`app`]). [`sim`] runs validators on Commonware's deterministic runtime and
//! simulated network with seeded faults; [`validator`] runs one as a process on the network,
//! with the node's chain and API.

pub mod app;
pub mod block;
pub mod sim;
pub mod validator;

use commonware_consensus::simplex::scheme::bls12381_threshold::vrf;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::ed25519::PublicKey;
use commonware_cryptography::sha256::Digest;

/// The signing scheme of votes and certificates: threshold BLS, which also signs each view's seed.
pub type Scheme = vrf::Scheme<PublicKey, MinSig>;
/// What consensus tells the application about a payload: round, leader, parent.
pub type Ctx = commonware_consensus::simplex::types::Context<Digest, PublicKey>;

/// Domain of every consensus signature of AICPW validators.
pub const NAMESPACE: &[u8] = b"aicpw-2026-12-consensus";
