//! A task's on-chain terms, its life-cycle states and the reasons a task ends without success.

use crate::codec::{CodecError, Decode, Decoder, Encode, Encoder};
use crate::{codec_struct, codec_unit_enum, Amount, Resources};
use serde::{Deserialize, Serialize};

/// Most replicas a task may ask for.
pub const REPLICAS_MAX: u8 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    #[default]
    Training,
    FineTuning,
    Inference,
    Rendering,
    Other,
}
codec_unit_enum!(TaskKind { Training = 0, FineTuning = 1, Inference = 2, Rendering = 3, Other = 4 });

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    #[default]
    Sandbox,
    Container,
}
codec_unit_enum!(Runtime { Sandbox = 0, Container = 1 });

/// How the matcher chooses among eligible nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MatchStrategy {
    #[default]
    LowestPrice,
    ReputationFirst,
    BestFit,
    Batch,
}
codec_unit_enum!(MatchStrategy { LowestPrice = 0, ReputationFirst = 1, BestFit = 2, Batch = 3 });

/// How the result is checked before the provider is paid. Written `none`, `audit` or `{replicas: k}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    #[default]
    None,
    Audit,
    Replicas(u8),
}

impl<'de> Deserialize<'de> for Verification {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ReplicasForm {
            replicas: u8,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Word(String),
            Replicas(ReplicasForm),
        }
        match Form::deserialize(d)? {
            Form::Word(word) if word == "none" => Ok(Verification::None),
            Form::Word(word) if word == "audit" => Ok(Verification::Audit),
            Form::Word(word) => Err(serde::de::Error::custom(format!(
                "unknown verification `{word}`, expected none, audit or {{replicas: k}}"
            ))),
            Form::Replicas(form) => Ok(Verification::Replicas(form.replicas)),
        }
    }
}

impl Encode for Verification {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Verification::None => e.tag(0),
            Verification::Audit => e.tag(1),
            Verification::Replicas(k) => {
                e.tag(2);
                k.encode(e);
            }
        }
    }
}
impl Decode for Verification {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, CodecError> {
        match d.tag()? {
            0 => Ok(Verification::None),
            1 => Ok(Verification::Audit),
            2 => Ok(Verification::Replicas(u8::decode(d)?)),
            tag => Err(CodecError::UnknownTag { what: "Verification", tag }),
        }
    }
}

/// The terms a requester signs when submitting a task. Command, arguments and inputs travel in
/// the (normally encrypted) input bundle named by `inputs_cid`, so they never appear on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTerms {
    pub name: String,
    pub kind: TaskKind,
    pub runtime: Runtime,
    pub resources: Resources,
    pub time_limit_secs: u64,
    pub budget: Amount,
    pub max_price_per_hour: Amount,
    pub verification: Verification,
    pub strategy: MatchStrategy,
    pub reputation_min: u16,
    pub network: bool,
    pub encrypted: bool,
    pub inputs_cid: String,
    /// The requester's X25519 public key; results are sealed to it.
    #[serde(with = "hex_array")]
    pub result_key: [u8; 32],
}
codec_struct!(TaskTerms {
    name,
    kind,
    runtime,
    resources,
    time_limit_secs,
    budget,
    max_price_per_hour,
    verification,
    strategy,
    reputation_min,
    network,
    encrypted,
    inputs_cid,
    result_key
});

/// Where a task is in its life. `Completed`, `Failed` and `Cancelled` are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    Queued,
    Running,
    Verifying,
    Completed,
    Failed,
    Cancelled,
}
codec_unit_enum!(TaskState {
    Queued = 0,
    Running = 1,
    Verifying = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5
});

impl TaskState {
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed | TaskState::Cancelled)
    }
}

/// Why an attempt or a task ended without success; every termination carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureReason {
    CancelledByRequester,
    LeaseExpired,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    CpuLimitExceeded,
    ProcessLimitExceeded,
    TaskExitedWithError,
    ProviderError,
    InputsUnavailable,
    ResultRejected,
    AttemptsExhausted,
    NoEligibleProvider,
    NodeDeregistered,
    DiskLimitExceeded,
    /// No output hash reached a strict majority of the replicas (or worker, auditor, referee).
    NoQuorum,
    /// The verification the task asked for could not be staffed or finished in time.
    VerificationUnavailable,
    /// The requester did not grant the content key to a node placed on its task in time: the
    /// node is released without blame and paid its time waiting.
    KeysNotGranted,
}
codec_unit_enum!(FailureReason {
    CancelledByRequester = 1,
    LeaseExpired = 2,
    TimeLimitExceeded = 3,
    MemoryLimitExceeded = 4,
    CpuLimitExceeded = 5,
    ProcessLimitExceeded = 6,
    TaskExitedWithError = 7,
    ProviderError = 8,
    InputsUnavailable = 9,
    ResultRejected = 10,
    AttemptsExhausted = 11,
    NoEligibleProvider = 12,
    NodeDeregistered = 13,
    DiskLimitExceeded = 14,
    NoQuorum = 15,
    VerificationUnavailable = 16,
    KeysNotGranted = 17
});

impl FailureReason {
    /// Failures caused by the task itself: the provider did the work the requester asked for and is
    /// paid for the time used, and the task is not retried elsewhere.
    pub fn is_task_fault(self) -> bool {
        matches!(
            self,
            FailureReason::TimeLimitExceeded
                | FailureReason::MemoryLimitExceeded
                | FailureReason::CpuLimitExceeded
                | FailureReason::ProcessLimitExceeded
                | FailureReason::DiskLimitExceeded
                | FailureReason::TaskExitedWithError
        )
    }
    pub fn code(self) -> u8 {
        self.to_bytes()[0]
    }
}

/// Hex serialization for fixed byte arrays in JSON.
pub mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}
