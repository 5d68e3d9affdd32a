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

/// How the result is checked before the provider is paid. Written `spot`, `audit` or
/// `{replicas: k}`: `spot` audits at the floor rate whatever the node's streak, `audit` also
/// audits every result of a node without a long clean streak, `replicas` runs k at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    #[default]
    Spot,
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
            Form::Word(word) if word == "spot" => Ok(Verification::Spot),
            Form::Word(word) if word == "audit" => Ok(Verification::Audit),
            Form::Word(word) => Err(serde::de::Error::custom(format!(
                "unknown verification `{word}`, expected spot, audit or {{replicas: k}} (no result \
                 goes unaudited: `none` became `spot`, audits at the floor rate)"
            ))),
            Form::Replicas(form) => Ok(Verification::Replicas(form.replicas)),
        }
    }
}

impl Encode for Verification {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Verification::Spot => e.tag(0),
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
            0 => Ok(Verification::Spot),
            1 => Ok(Verification::Audit),
            2 => Ok(Verification::Replicas(u8::decode(d)?)),
            tag => Err(CodecError::UnknownTag { what: "Verification", tag }),
        }
    }
}

/// What happens to a result outside the tolerance of the majority of a non-deterministic task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CompareMode {
    /// The tolerance covers every honest difference: a result outside the tolerance of a strict
    /// majority is wrong and slashed, as a different hash is for a deterministic task.
    #[default]
    Tolerance,
    /// The tolerance may not cover every honest difference: a committee decides which result
    /// stands, a result outside it is not paid but nobody is slashed; no majority within the
    /// tolerance fails the task with a refund.
    Committee,
}
codec_unit_enum!(CompareMode { Tolerance = 0, Committee = 1 });

/// Longest summary path, in bytes.
pub const SUMMARY_PATH_BYTES_MAX: usize = 256;
/// Most numbers in a result's summary.
pub const SUMMARY_VALUES_MAX: usize = 8;
/// Largest magnitude of a summary number and of a tolerance, in micro-units (10^12 units).
pub const SUMMARY_MICROS_MAX: u64 = 1_000_000_000_000_000_000;
/// Micro-units in one unit: summaries and tolerances are fixed-point with six decimals.
pub const MICROS_PER_UNIT: u64 = 1_000_000;

/// A task whose honest results differ by machine (floating-point reductions, GPU kernels)
/// declares it: its results are compared by the numbers its run writes to `summary` (a JSON
/// array of 1 to `SUMMARY_VALUES_MAX` numbers, one of the task's outputs), each within
/// `tolerance_micros` of the other's, instead of by their output hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nondeterminism {
    /// The summary file, relative to the task's output directory.
    pub summary: String,
    /// Largest difference allowed per number, in micro-units (1 to `SUMMARY_MICROS_MAX`).
    pub tolerance_micros: u64,
    #[serde(default)]
    pub mode: CompareMode,
}
codec_struct!(Nondeterminism { summary, tolerance_micros, mode });

impl Nondeterminism {
    /// Whether two summaries agree: as many numbers, each pair within the tolerance.
    pub fn agree(&self, a: &[i64], b: &[i64]) -> bool {
        let close = |(x, y): (&i64, &i64)| {
            (i128::from(*x) - i128::from(*y)).unsigned_abs() <= u128::from(self.tolerance_micros)
        };
        a.len() == b.len() && a.iter().zip(b).all(close)
    }
}

/// Whether a revealed summary has a usable shape: 1 to `SUMMARY_VALUES_MAX` numbers of at most
/// `SUMMARY_MICROS_MAX` micro-units.
pub fn summary_well_formed(summary: &[i64]) -> bool {
    (1..=SUMMARY_VALUES_MAX).contains(&summary.len())
        && summary.iter().all(|v| v.unsigned_abs() <= SUMMARY_MICROS_MAX)
}

/// Reads a summary file: a JSON array of 1 to `SUMMARY_VALUES_MAX` finite numbers of magnitude
/// at most 10^12, each rounded to the nearest micro-unit.
pub fn parse_summary(bytes: &[u8]) -> Result<Vec<i64>, String> {
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON array of numbers: {e}"))?;
    let micros = |v: &serde_json::Value| -> Result<i64, String> {
        let x = v.as_f64().ok_or_else(|| format!("`{v}` is not a number"))?;
        let limit = (SUMMARY_MICROS_MAX / MICROS_PER_UNIT) as f64;
        if !x.is_finite() || x.abs() > limit {
            return Err(format!("`{v}` is not a finite number of magnitude at most 10^12"));
        }
        // In range by the check above: |x| * 10^6 <= 10^18 < i64::MAX.
        Ok((x * MICROS_PER_UNIT as f64).round() as i64)
    };
    let summary = values.iter().map(micros).collect::<Result<Vec<i64>, String>>()?;
    if !summary_well_formed(&summary) {
        return Err(format!("{} numbers, expected 1 to {SUMMARY_VALUES_MAX}", summary.len()));
    }
    Ok(summary)
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
    /// Content in the store the task reads beside its bundle (datasets, models, images), named
    /// here so that the node holds it while the task is open and providers can fetch it before
    /// the key grant; the names and keys are in the bundle.
    #[serde(default)]
    pub input_cids: Vec<String>,
    /// The requester's X25519 public key; results are sealed to it.
    #[serde(with = "hex_array")]
    pub result_key: [u8; 32],
    /// Set by a task whose honest results differ by machine; `None`: outputs are identical.
    #[serde(default)]
    pub nondeterministic: Option<Nondeterminism>,
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
    input_cids,
    result_key,
    nondeterministic
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
