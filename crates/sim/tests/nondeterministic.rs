//! Honest providers whose outputs differ by machine: a task with floating-point reductions or
//! GPU kernels gives one output per class of machine (`work::OUTPUT_CLASSES`), the same within
//! a class. The ledger compares exact output hashes and a task cannot declare itself
//! non-deterministic, so an audit or a replica vote between machines of different classes
//! splits, and the referee or committee slashes whichever honest side it outvotes.

use aicpw_sim::rng::SimRng;
use aicpw_sim::scenarios::{base_setup, run};
use aicpw_sim::setup::RequesterSpec;
use aicpw_sim::RunReport;
use aicpw_types::Verification;

/// Seeds the test runs: enough to show what exact comparison costs honest providers.
const SEEDS: u64 = 20;

/// Six honest providers (two per output class) and honest requesters whose every task is
/// non-deterministic, under every verification policy, on the default network.
fn nondeterministic_network(seed: u64) -> RunReport {
    let mut rng = SimRng::new(seed, "test nondeterministic network");
    let mut setup = base_setup(seed, &mut rng, 6);
    let policies = vec![Verification::None, Verification::Audit, Verification::Replicas(3)];
    let honest = RequesterSpec::honest(14, policies);
    setup.requesters =
        (0..3).map(|_| RequesterSpec { nondeterministic: true, ..honest.clone() }).collect();
    run("honest-nondeterministic", &setup, None, None)
}

#[test]
#[ignore = "the ledger compares exact output hashes: a task cannot declare itself \
            non-deterministic and be compared by a tolerance or a committee (issue 10, item 2)"]
fn honest_providers_whose_outputs_differ_by_machine_are_never_slashed() {
    let reports: Vec<RunReport> = (0..SEEDS).map(nondeterministic_network).collect();
    let sum = |f: fn(&RunReport) -> u64| reports.iter().map(f).sum::<u64>();
    let lost: u128 = reports.iter().map(|r| r.figures.honest_pay_lost).sum();
    assert_eq!(sum(|r| r.violations), 0);
    assert_eq!(
        (sum(|r| r.honest_slashed), sum(|r| r.honest_frozen), lost),
        (0, 0, 0),
        "over {SEEDS} seeds: honest slashes, freezes and pay lost; {} of {} tasks failed",
        sum(|r| r.tasks_failed),
        sum(|r| r.tasks_submitted),
    );
}
