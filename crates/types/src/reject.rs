//! Domain rejections: one enum, stable numeric codes shown by the API and the CLI.
//!
//! Codes never change meaning once released. 1xx: the transaction itself; 2xx: accounts and money;
//! 3xx: staking; 4xx: provider nodes; 5xx: tasks; 6xx: verification; 7xx: clients (task files);
//! 9xx: the node around the ledger.

use serde::Serialize;

macro_rules! rejects {
    ($($variant:ident = $code:literal, $message:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reject { $($variant,)* }

        impl Reject {
            pub const ALL: &'static [Reject] = &[$(Reject::$variant,)*];
            /// The stable numeric code.
            pub fn code(self) -> u16 {
                match self { $(Reject::$variant => $code,)* }
            }
            /// The stable machine-readable name, in snake case.
            pub fn name(self) -> &'static str {
                match self { $(Reject::$variant => stringify!($variant),)* }
            }
            pub fn message(self) -> &'static str {
                match self { $(Reject::$variant => $message,)* }
            }
            pub fn from_code(code: u16) -> Option<Reject> {
                match code { $($code => Some(Reject::$variant),)* _ => None }
            }
        }
    };
}

rejects! {
    Malformed = 100, "the transaction could not be decoded";
    Oversize = 101, "the transaction is larger than the limit";
    BadSignature = 102, "the signature does not match the signer";
    WrongChain = 103, "the transaction is for another chain";
    FieldTooLong = 104, "a field is longer than its limit";
    InvalidField = 105, "a field has an invalid value";
    FeeTooLow = 106, "the fee is below the network minimum";
    NonceReplayed = 200, "the nonce was already used: replayed transaction";
    NonceGap = 201, "the nonce is ahead of the account's next nonce";
    InsufficientBalance = 202, "the balance does not cover the amount and fee";
    AmountOverflow = 203, "the amount overflows";
    ZeroAmount = 204, "the amount must be positive";
    UnknownAccount = 205, "no such account";
    NoncePending = 206, "this signer already has a transaction with this nonce waiting";
    NonceTooFar = 207, "the nonce is too far ahead of the account's next nonce";
    EarlierRejected = 208, "an earlier transaction of this signer was rejected; resubmit";
    StorageFeeUnpaid = 210, "the balance does not cover the storage fee of the entries the transaction creates";
    InsufficientStake = 300, "not enough bonded stake";
    NothingToWithdraw = 301, "no unbonded stake has matured yet";
    UnbondingQueueFull = 302, "too many unbonding entries; withdraw first";
    StakeLocked = 303, "the stake backs registered nodes or running work";
    UnknownNode = 400, "no such node";
    NotNodeOwner = 401, "the signer does not own this node";
    NodeLimitReached = 402, "the account has registered the maximum number of nodes";
    NodeBusy = 403, "the node has work in progress";
    NodeNotActive = 404, "the node is frozen, ejected or deregistered";
    UnknownTask = 500, "no such task";
    NotTaskRequester = 501, "the signer did not submit this task";
    NotAssignedProvider = 502, "the signer's node is not assigned to this task";
    InvalidTaskState = 503, "the task is not in a state that allows this";
    BudgetTooLow = 504, "the budget does not cover the time limit at the maximum price";
    InvalidRating = 505, "ratings are 1 to 5";
    AlreadyRated = 506, "the task was already rated";
    TooManyKeyGrants = 507, "too many sealed key grants";
    LeaseNotExpired = 508, "the lease has not expired yet";
    TasksPendingFull = 509, "the market's queue of pending tasks is full";
    CancelPending = 510, "the task's cancel already waits for the verdict on its revealed results";
    GrantWithoutLease = 545, "a key grant names a node that holds no open lease of the task";
    WeakX25519Key = 546, "the X25519 key is of small order: anything sealed to it could be opened by anyone";
    UnknownChallenge = 600, "no such challenge";
    ChallengeClosed = 601, "the challenge's deadline has passed or it was answered";
    BadCommitment = 602, "the revealed result does not match its commitment";
    DisputeWindowClosed = 603, "the dispute window has closed";
    NotEligibleVoter = 604, "the signer may not vote on this";
    RevealNotOpen = 620, "the reveal opens once every lease of the task's round has committed";
    AlreadyCommitted = 621, "this lease has already committed or revealed";
    BondTooLow = 622, "the bond does not cover re-execution by the committee";
    DisputeOpen = 623, "the task already has an open dispute";
    NodeNotFrozen = 624, "only a frozen node can appeal";
    AppealNotOpen = 625, "no appeal is open for this node";
    AlreadyVoted = 626, "this account already voted on this appeal";
    AppealOpen = 627, "the node already has an open appeal, or has used all its appeals";
    LateRevealClosed = 628, "the late reveal window of this withheld commitment has closed";
    InputOutsideTaskDir = 650, "an input of the task file lies outside the task file's directory (allow it with --allow-input-outside)";
    NotRegularFile = 651, "a file named by the user or a task file is not a regular file or directory";
    ResultPathExists = 652, "the result names a path that already exists in the output directory";
    FileTooLarge = 653, "a file named by the user or a task file is larger than its limit";
    VoteStakeTooLow = 640, "a vote on an appeal needs at least the minimum vote stake bonded";
    AppealVotersFull = 641, "the appeal's voter seats are full of votes with at least this stake";
    ResultUnavailable = 630, "the result CID is not in the node's content store in full: upload it first";
    ChallengeKindMismatch = 610, "the transaction does not answer this kind of challenge";
    OpeningsNotDrawn = 611, "the tiles to open are drawn in the block after the commitment";
    OpeningsOutOfOrder = 612, "openings must continue from the first drawn tile not yet opened";
    ChallengeVerifyBusy = 613, "this block's budget for checking openings is spent; retry";
    PuzzleUnsolved = 614, "the nonce does not solve the puzzle";
    TagMismatch = 670, "the revealed result does not match the equality tag committed with it";
    NondeterminismInvalid = 680, "a non-deterministic task names a summary file (a relative path without `..`) and a tolerance of 1 to 10^18 micro-units";
    SummaryInvalid = 681, "a non-deterministic task's result reveals a summary of 1 to 8 numbers of at most 10^18 micro-units, a deterministic task's none";
    KnownAnswerNondeterministic = 682, "a non-deterministic task has no exact answer: it cannot carry a known answer";
    UploadMalformed = 700, "the upload is not a well-formed file DAG or CAR file: none of it was kept";
    UploadOffsetMismatch = 701, "the upload resumes at another offset than the node holds: resume at the offset the answer names";
    UploadIncomplete = 702, "the upload ended before its signed size: resume at the offset the answer names";
    UploadBusy = 703, "another request is feeding this upload; retry";
    UploadSessionsFull = 704, "the node, or this account, has too many unfinished uploads; finish one or let it expire";
    InputCidsInvalid = 705, "a task names at most 16 input CIDs, each non-empty and at most 128 bytes, none twice";
    InputNotStored = 706, "an input named by CID is not in the node's store: add it first (aicpw store add)";
    InputSealedByAnother = 707, "an input named by CID was sealed by another account: only the account that sealed it can grant its key";
    TaskFileInvalid = 740, "the task file is not valid: the message names the line and the field";
    MempoolFull = 900, "the mempool is full; retry later";
    DuplicateTransaction = 901, "the transaction is already in the mempool";
    NotFound = 902, "no such object";
    ContentMismatch = 903, "the content does not match its CID";
    PayloadTooLarge = 904, "the request body is larger than the limit";
    BadRequest = 905, "the request could not be parsed";
    Unavailable = 906, "the node cannot serve this now";
    SignerQuotaFull = 910, "the signer's share of the mempool is full; retry later";
    MempoolExpired = 911, "the transaction waited too long for the nonces before it";
    UploadUnsigned = 920, "a store upload must carry an aicpw-upload header signed by a funded account";
    UploadSignatureInvalid = 921, "the upload's signature does not match its account, CID and size";
    UploadStale = 922, "the upload's signed time is too far from the node's clock; sign it again";
    UploaderUnfunded = 923, "the uploading account holds less than the store's minimum balance";
    StoreQuotaExceeded = 924, "the account's store quota is used up until its unreferenced content is collected";
    StoreFull = 925, "the node's store holds all the content it takes; retry later";
    NotAFile = 926, "the CID is a directory or symlink, not a file: fetch it as a CAR";
    BodyTooSlow = 927, "the request body arrived slower than the node's minimum rate";
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reject {} {}: {}", self.code(), self.name(), self.message())
    }
}

impl std::error::Error for Reject {}

impl Serialize for Reject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Reject", 3)?;
        st.serialize_field("code", &self.code())?;
        st.serialize_field("name", self.name())?;
        st.serialize_field("message", self.message())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_code_is_unique_and_round_trips() {
        let codes: BTreeSet<u16> = Reject::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reject::ALL.len());
        for reject in Reject::ALL {
            assert_eq!(Reject::from_code(reject.code()), Some(*reject));
        }
    }

    #[test]
    fn released_codes_keep_their_meaning() {
        assert_eq!(Reject::BadSignature.code(), 102);
        assert_eq!(Reject::NonceReplayed.code(), 200);
        assert_eq!(Reject::InsufficientBalance.code(), 202);
        assert_eq!(Reject::Oversize.code(), 101);
        assert_eq!(Reject::BadCommitment.code(), 602);
        assert_eq!(Reject::LateRevealClosed.code(), 628);
    }
}
