//! Stateless checks: everything about a transaction that needs no state.

use aicpw_types::codec::Encode;
use aicpw_types::hardware::GPU_MODEL_BYTES_MAX;
use aicpw_types::spec::{INPUT_CIDS_MAX, NAME_BYTES_MAX};
use aicpw_types::task::{
    summary_well_formed, Verification, REPLICAS_MAX, SUMMARY_MICROS_MAX, SUMMARY_PATH_BYTES_MAX,
};
use aicpw_types::tx::TX_BYTES_MAX;
use aicpw_types::{Reject, SignedTx, TaskTerms, TxBody};

pub const ENDPOINT_BYTES_MAX: usize = 256;
pub const CID_BYTES_MAX: usize = 128;
pub const KEY_GRANTS_MAX: usize = 64;
pub const SEALED_KEY_BYTES: usize = 32 + aicpw_types::seal::SEAL_OVERHEAD;
pub const CHAIN_ID_BYTES_MAX: usize = 64;

fn longer(text: &str, max: usize) -> Result<(), Reject> {
    if text.len() > max {
        return Err(Reject::FieldTooLong);
    }
    Ok(())
}

fn positive(amount: aicpw_types::Amount) -> Result<(), Reject> {
    if amount.is_zero() {
        return Err(Reject::ZeroAmount);
    }
    Ok(())
}

fn check_terms(terms: &TaskTerms) -> Result<(), Reject> {
    longer(&terms.name, NAME_BYTES_MAX)?;
    longer(&terms.inputs_cid, CID_BYTES_MAX)?;
    longer(&terms.resources.gpu_model, GPU_MODEL_BYTES_MAX)?;
    if terms.name.is_empty() || terms.inputs_cid.is_empty() || terms.time_limit_secs == 0 {
        return Err(Reject::InvalidField);
    }
    let distinct: std::collections::BTreeSet<&String> = terms.input_cids.iter().collect();
    if terms.input_cids.len() > INPUT_CIDS_MAX
        || distinct.len() < terms.input_cids.len()
        || terms.input_cids.iter().any(|cid| cid.is_empty() || cid.len() > CID_BYTES_MAX)
    {
        return Err(Reject::InputCidsInvalid);
    }
    if terms.reputation_min > 1000 {
        return Err(Reject::InvalidField);
    }
    if let Verification::Replicas(k) = terms.verification {
        if !(2..=REPLICAS_MAX).contains(&k) {
            return Err(Reject::InvalidField);
        }
    }
    if let Some(rule) = &terms.nondeterministic {
        let path_ok = rule.summary.len() <= SUMMARY_PATH_BYTES_MAX
            && aicpw_types::spec::is_relative_plain_path(&rule.summary);
        if !path_ok || !(1..=SUMMARY_MICROS_MAX).contains(&rule.tolerance_micros) {
            return Err(Reject::NondeterminismInvalid);
        }
    }
    positive(terms.budget)?;
    positive(terms.max_price_per_hour)
}

/// Keys that content is sealed to: one of small order would make every box sealed to it public.
fn usable_key(key: &[u8; 32]) -> Result<(), Reject> {
    if !aicpw_types::seal::key_is_usable(key) {
        return Err(Reject::WeakX25519Key);
    }
    Ok(())
}

fn check_grants(grants: &[aicpw_types::tx::KeyGrant]) -> Result<(), Reject> {
    if grants.len() > KEY_GRANTS_MAX {
        return Err(Reject::TooManyKeyGrants);
    }
    if grants.iter().any(|g| g.sealed_key.len() != SEALED_KEY_BYTES) {
        return Err(Reject::InvalidField);
    }
    Ok(())
}

/// Size, chain and field checks; the signature is checked separately (in batches by the node).
pub fn stateless(tx: &SignedTx, chain_id: &str) -> Result<(), Reject> {
    if tx.to_bytes().len() > TX_BYTES_MAX {
        return Err(Reject::Oversize);
    }
    if tx.tx.chain_id != chain_id {
        return Err(Reject::WrongChain);
    }
    match &tx.tx.body {
        TxBody::Transfer { amount, .. } | TxBody::Bond { amount } | TxBody::Unbond { amount } => {
            positive(*amount)
        }
        TxBody::RegisterNode { hardware, x25519_key, endpoint, price_per_hour }
        | TxBody::UpdateNode { hardware, x25519_key, endpoint, price_per_hour, .. } => {
            longer(endpoint, ENDPOINT_BYTES_MAX)?;
            longer(&hardware.gpu_model, GPU_MODEL_BYTES_MAX)?;
            usable_key(x25519_key)?;
            positive(*price_per_hour)
        }
        TxBody::SubmitTask { terms, .. } => {
            check_terms(terms)?;
            usable_key(&terms.result_key)
        }
        TxBody::GrantKeys { key_grants, .. } => check_grants(key_grants),
        TxBody::TaskHeartbeat { progress_permille, .. } if *progress_permille > 1000 => {
            Err(Reject::InvalidField)
        }
        TxBody::RevealResult { result_cid, summary, .. } => {
            longer(result_cid, CID_BYTES_MAX)?;
            if !summary.is_empty() && !summary_well_formed(summary) {
                return Err(Reject::SummaryInvalid);
            }
            if result_cid.is_empty() {
                return Err(Reject::InvalidField);
            }
            Ok(())
        }
        TxBody::DisputeResult { bond, .. } => positive(*bond),
        TxBody::RateTask { stars, .. } if !(1..=5).contains(stars) => Err(Reject::InvalidRating),
        _ => Ok(()),
    }
}
