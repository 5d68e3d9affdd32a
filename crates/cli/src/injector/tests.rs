use super::*;
use aicpw_types::Hash32;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn entry(id: &str) -> EntryInfo {
    EntryInfo {
        version: known_answers::ENTRY_VERSION,
        id: id.into(),
        name: id.into(),
        answer_hash: Hash32([1; 32]),
        bundle_hash: Hash32([2; 32]),
        added_unix_secs: 0,
        run_ms: 1,
    }
}

#[test]
fn injections_follow_about_the_rate_of_the_accounts_tasks() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let draws = 1_000_000u32;
    let injected = (0..draws).filter(|_| draws_injection(&mut rng, RATE_DEFAULT_PPM)).count();
    // Binomial(10^6, 1.5%): standard deviation ~122; 5 of them either side.
    assert!((14_390..=15_610).contains(&injected), "{injected} injections of {draws}");
    assert!(!(0..10_000).any(|_| draws_injection(&mut rng, 0)), "0 ppm never injects");
    assert!((0..10_000).all(|_| draws_injection(&mut rng, aicpw_verify::PPM)), "100% always does");
}

#[test]
fn rates_above_ten_percent_need_the_test_switch() {
    assert!(check_rate(RATE_DEFAULT_PPM, false).is_ok());
    assert!(check_rate(RATE_MAX_PPM, false).is_ok());
    assert!(check_rate(RATE_MAX_PPM + 1, false).is_err());
    assert!(check_rate(1_000_000, true).is_ok());
    assert!(check_rate(1_000_001, true).is_err());
}

#[test]
fn the_least_used_entries_are_picked_and_worn_out_ones_never() {
    let entries = vec![entry("a"), entry("b"), entry("c")];
    let uses: BTreeMap<String, u32> = [("a".to_string(), 1), ("b".to_string(), 2)].into();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..100 {
        let picked = pick_entry(&entries, &uses, 4, &mut rng).expect("an entry");
        assert_eq!(picked.id, "c", "the unused one first");
    }
    let uses: BTreeMap<String, u32> =
        [("a".to_string(), 3), ("b".to_string(), 3), ("c".to_string(), 4)].into();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        seen.insert(pick_entry(&entries, &uses, 4, &mut rng).expect("an entry").id.clone());
    }
    assert_eq!(seen, ["a".to_string(), "b".to_string()].into(), "ties are drawn at random");
    let worn: BTreeMap<String, u32> = entries.iter().map(|e| (e.id.clone(), 4)).collect();
    assert!(pick_entry(&entries, &worn, 4, &mut rng).is_none());
    assert!(pick_entry(&[], &BTreeMap::new(), 4, &mut rng).is_none());
}

#[test]
fn a_mismatch_counts_as_caught_only_when_the_committee_agreed_with_the_known_answer() {
    let ended = |state: &str, outcome: Option<&str>, claimed: bool| {
        let dispute = outcome.map(|outcome| {
            let claimed = claimed.then(|| Hash32([1; 32]).to_string());
            serde_json::json!({ "outcome": outcome, "claimed_answer": claimed })
        });
        let task = serde_json::json!({
            "state": state, "result": { "node": 7 }, "dispute": dispute, "failure": null,
        });
        reveal::judged(&task).0
    };
    assert_eq!(ended("failed", Some("upheld"), true), Verdict::Caught);
    assert_eq!(ended("completed", Some("rejected"), true), Verdict::Refuted);
    assert_eq!(ended("completed", Some("inconclusive"), true), Verdict::Unchecked);
    // A dispute opened by hand says nothing about the known answer.
    assert_eq!(ended("failed", Some("upheld"), false), Verdict::NoResult);
    assert_eq!(ended("completed", Some("rejected"), false), Verdict::Unchecked);
    assert_eq!(ended("completed", None, false), Verdict::Unchecked);
    assert_eq!(ended("cancelled", None, false), Verdict::NoResult);
}

/// A known-answer spotter compares an account's tasks by their terms: an injection that kept its
/// library entry's own (time limit, budget, resources) was told apart from the account's real
/// tasks. Dressed in the terms of the task that drew it, it shows the same terms,
/// with the entry's command and inputs (sealed in its bundle) inside.
#[test]
fn an_injection_wears_the_terms_of_the_real_task_that_drew_it() {
    let entry = aicpw_types::spec::TaskFile::parse(
        "version: 1\nname: kat-sort\ncommand: sh\nargs: [run.sh]\ntime_limit_secs: 30\n\
         budget: \"100\"\nmax_price_per_hour: \"36000\"\nresources: {cpu_cores: 1, memory_mb: 256}\n",
    )
    .expect("entry");
    let real = aicpw_types::TaskTerms {
        name: "train-shard-17".into(),
        kind: aicpw_types::task::TaskKind::Training,
        runtime: entry.runtime,
        resources: aicpw_types::Resources { cpu_cores: 4, memory_mb: 8_192, ..Default::default() },
        time_limit_secs: 600,
        budget: aicpw_types::Amount(9_000_000),
        max_price_per_hour: aicpw_types::Amount(3_600_000),
        verification: aicpw_types::Verification::Audit,
        strategy: aicpw_types::task::MatchStrategy::LowestPrice,
        reputation_min: 300,
        network: false,
        encrypted: true,
        inputs_cid: "bafkreireal".into(),
        input_cids: Vec::new(),
        result_key: [3; 32],
        nondeterministic: None,
    };
    let dressed = dressed_as(&entry, &real).expect("the real task grants what the entry needs");
    assert_eq!(dressed.name, "kat-sort", "a copy of the drawing task's name would stand out");
    assert_eq!(dressed.kind, real.kind);
    assert_eq!(dressed.resources, real.resources);
    assert_eq!(dressed.time_limit_secs, real.time_limit_secs);
    assert_eq!(dressed.budget, real.budget);
    assert_eq!(dressed.max_price_per_hour, real.max_price_per_hour);
    assert_eq!(dressed.verification, real.verification);
    assert_eq!(dressed.reputation_min, real.reputation_min);
    assert_eq!(
        (dressed.command.as_str(), dressed.args.clone()),
        ("sh", vec!["run.sh".to_string()])
    );

    let shorter = aicpw_types::TaskTerms { time_limit_secs: 20, ..real.clone() };
    assert!(dressed_as(&entry, &shorter).is_none(), "a shorter limit than the entry was run with");
    let mut smaller = real.clone();
    smaller.resources.memory_mb = 128;
    assert!(dressed_as(&entry, &smaller).is_none(), "less memory than the entry was run with");
    let networked = aicpw_types::TaskTerms { network: true, ..real.clone() };
    assert!(dressed_as(&entry, &networked).is_none(), "no entry is checked with network access");
    let rule = aicpw_types::task::Nondeterminism {
        summary: "metrics.json".into(),
        tolerance_micros: 1_000,
        mode: aicpw_types::task::CompareMode::Tolerance,
    };
    let nondeterministic = aicpw_types::TaskTerms { nondeterministic: Some(rule), ..real };
    assert!(dressed_as(&entry, &nondeterministic).is_none(), "a known answer is an exact hash");
}
