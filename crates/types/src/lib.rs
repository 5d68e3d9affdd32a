//! AICPW shared types: ids, amounts, specs, transactions, the canonical codec and reject codes.

pub mod amount;
pub mod bundle;
pub mod codec;
pub mod hardware;
pub mod ids;
pub mod keys;
pub mod reject;
pub mod seal;
pub mod seal_stream;
pub mod spec;
pub mod task;
pub mod tx;
pub mod upload;

pub use amount::{Amount, ComputeUnits};
pub use codec::{CodecError, Decode, Decoder, Encode, Encoder};
pub use hardware::{Hardware, Resources};
pub use ids::{AccountId, ChallengeId, Hash32, NodeId, TaskId};
pub use keys::Keypair;
pub use reject::Reject;
pub use task::{FailureReason, TaskState, TaskTerms, Verification};
pub use tx::{Block, BlockEnv, BlockHeader, SignedTx, Tx, TxBody};
