//! Explanations of waiting tasks and idle nodes.

use crate::common::*;
use aicpw_matcher::{Constraint, ConstraintCounts, NodeExplanation, TaskExplanation};
use aicpw_types::{Amount, NodeId, TaskId};

fn serializable<T: serde::Serialize>(_: &T) {}

#[test]
fn a_waiting_task_is_told_which_requirement_no_node_meets_and_how_many_fail_each() {
    let mut offline = gpu_node(1, "H100", 1, 50);
    offline.online = false;
    let mut unknown_model = gpu_node(2, "A100", 1, 50);
    unknown_model.reputation_permille = 100;
    let mut low_reputation = gpu_node(3, "H100", 1, 60);
    low_reputation.reputation_permille = 400;
    let dear = gpu_node(4, "H100", 1, 300);
    let dearer = gpu_node(5, "H100", 1, 400);
    let m = matcher(&[offline, unknown_model, low_reputation, dear, dearer]);
    let mut task = gpu_task(7, "H100", 1, 200);
    task.reputation_min = 500;
    let why = m.explain_task(&task);
    serializable(&why);
    assert_eq!(why.task, TaskId(7));
    assert!(why.exhaustive);
    assert_eq!((why.nodes_total, why.nodes_checked, why.nodes_eligible), (5, 5, 0));
    let expected = ConstraintCounts {
        offline: 1,
        gpu_model: 1,
        reputation: 2,
        price: 2,
        ..Default::default()
    };
    assert_eq!(why.failing, expected);
    assert_eq!(why.first_unmet, Some(Constraint::Price));
    assert!(
        why.message.contains("at most 200") && why.message.contains("asks 300"),
        "{}",
        why.message
    );
    assert_eq!(why.would_place_on, None);
}

#[test]
fn a_placeable_task_is_told_where_it_would_go() {
    let m = matcher(&[gpu_node(1, "H100", 1, 50), gpu_node(2, "H100", 1, 40)]);
    let why = m.explain_task(&gpu_task(1, "H100", 1, 100));
    assert_eq!(
        (why.nodes_eligible, why.first_unmet, why.would_place_on),
        (2, None, Some(NodeId(2)))
    );
    assert!(why.message.contains("node 2"), "{}", why.message);
}

#[test]
fn a_failed_placement_explains_from_what_its_search_saw() {
    let mut m = matcher(&[gpu_node(1, "H100", 1, 500), gpu_node(2, "A100", 1, 10)]);
    let why: TaskExplanation =
        m.place_one(&gpu_task(1, "H100", 1, 100), RANDOMNESS).expect_err("too dear");
    assert!(!why.exhaustive);
    assert_eq!(why.nodes_total, 2);
    assert_eq!(why.failing.gpu_model, 1);
    assert_eq!(why.failing.price, 1);
    assert_eq!(why.first_unmet, Some(Constraint::Price));
    assert!(why.message.contains("at most 100"), "{}", why.message);
}

#[test]
fn an_idle_node_is_told_why_it_gets_no_work() {
    let busy = gpu_node(3, "H100", 1, 10);
    let mut m = matcher(&[gpu_node(1, "H100", 1, 500), gpu_node(2, "H100", 1, 20), busy]);
    m.occupy(NodeId(3), &gpu_task(0, "H100", 1, 0).resources);
    let pending = vec![
        gpu_task(1, "H100", 1, 100),
        gpu_task(2, "H100", 1, 1_000),
        gpu_task(3, "A100", 1, 1_000),
    ];

    let dear: NodeExplanation = m.explain_node(NodeId(1), &pending);
    serializable(&dear);
    assert!(dear.registered && dear.online);
    assert_eq!((dear.tasks_checked, dear.tasks_eligible, dear.tasks_outranked), (3, 1, 1));
    assert_eq!((dear.failing.price, dear.failing.gpu_model), (1, 1));
    assert!(dear.reasons.iter().any(|r| r.starts_with("price too high")), "{:?}", dear.reasons);
    assert!(
        dear.reasons.iter().any(|r| r.contains("outranked") && r.contains("node 2")),
        "{:?}",
        dear.reasons
    );

    let full = m.explain_node(NodeId(3), &pending);
    assert_eq!(full.failing.capacity, 3);
    assert!(full.reasons.iter().any(|r| r.starts_with("capacity full")), "{:?}", full.reasons);

    let first = m.explain_node(NodeId(2), &pending);
    assert_eq!(first.tasks_first_in_line, 2);

    m.upsert_node(aicpw_matcher::NodeOffer { online: false, ..gpu_node(1, "H100", 1, 500) });
    let offline = m.explain_node(NodeId(1), &pending);
    assert!(!offline.online && offline.reasons[0].starts_with("offline"), "{:?}", offline.reasons);

    let unknown = m.explain_node(NodeId(42), &pending);
    assert!(!unknown.registered);
    let nothing = m.explain_node(NodeId(2), &[]);
    assert_eq!(nothing.reasons, vec!["no tasks are waiting".to_string()]);
}

#[test]
fn a_stake_shortfall_is_explained_with_the_amount_needed() {
    let mut poor = gpu_node(1, "H100", 1, 10);
    poor.stake = Amount::tokens(1);
    let m = matcher(&[poor]);
    let mut task = gpu_task(1, "H100", 1, 100);
    task.value = Amount::tokens(3);
    let why = m.explain_task(&task);
    assert_eq!(why.first_unmet, Some(Constraint::Stake));
    assert!(why.message.contains(&Amount::tokens(3).to_string()), "{}", why.message);
    let node = m.explain_node(NodeId(1), &[task]);
    assert!(node.reasons.iter().any(|r| r.contains("stake")), "{:?}", node.reasons);
}

#[test]
fn a_node_without_containers_is_told_that_container_tasks_pass_it_by() {
    let mut container = gpu_task(1, "H100", 1, 100);
    container.container = true;
    let pending = vec![container, gpu_task(2, "H100", 1, 100)];
    let m = matcher(&[gpu_node(1, "H100", 1, 50)]);
    let sandbox_only = m.explain_node(NodeId(1), &pending);
    assert_eq!((sandbox_only.failing.runtime, sandbox_only.tasks_eligible), (1, 1));
    assert!(
        sandbox_only
            .reasons
            .iter()
            .any(|r| r.starts_with("1 of 2 tasks run in containers") && r.contains("--containers")),
        "{:?}",
        sandbox_only.reasons
    );
    let mut engine = gpu_node(1, "H100", 1, 50);
    engine.hardware.runs_containers = true;
    let m = matcher(&[engine]);
    let runs_them = m.explain_node(NodeId(1), &pending);
    assert_eq!((runs_them.failing.runtime, runs_them.tasks_eligible), (0, 2));
    assert!(!runs_them.reasons.iter().any(|r| r.contains("containers")), "{:?}", runs_them.reasons);
}
