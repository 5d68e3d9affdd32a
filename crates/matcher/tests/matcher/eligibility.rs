//! Table-driven tests of the hard requirements.

use crate::common::{gpu_node, gpu_task};
use aicpw_matcher::{unmet, Capacity, Constraint, MatchParams, NodeOffer, TaskRequest};
use aicpw_types::{Amount, NodeId};

struct Row {
    name: &'static str,
    node: fn(&mut NodeOffer),
    task: fn(&mut TaskRequest),
    /// Free capacity: `None` for an idle node.
    free: Option<fn(&mut Capacity)>,
    params: fn(&mut MatchParams),
    expected: &'static [Constraint],
}

fn keep_node(_: &mut NodeOffer) {}
fn keep_task(_: &mut TaskRequest) {}
fn keep_params(_: &mut MatchParams) {}

const fn row(
    name: &'static str,
    node: fn(&mut NodeOffer),
    task: fn(&mut TaskRequest),
    expected: &'static [Constraint],
) -> Row {
    Row { name, node, task, free: None, params: keep_params, expected }
}

fn rows() -> Vec<Row> {
    use Constraint::*;
    vec![
        row("an idle matching node is eligible", keep_node, keep_task, &[]),
        row("offline", |n| n.online = false, keep_task, &[Offline]),
        row(
            "not among allowed nodes",
            keep_node,
            |t| t.allowed_nodes = Some(vec![NodeId(9)]),
            &[NotAllowed],
        ),
        row(
            "among allowed nodes",
            keep_node,
            |t| t.allowed_nodes = Some(vec![NodeId(9), NodeId(1)]),
            &[],
        ),
        row(
            "already failed the task",
            keep_node,
            |t| t.excluded_nodes = vec![NodeId(1)],
            &[Excluded],
        ),
        row("TEE required, none offered", keep_node, |t| t.tee_required = true, &[Tee]),
        row("TEE required and offered", |n| n.tee = true, |t| t.tee_required = true, &[]),
        row("network asked, node does not allow it", keep_node, |t| t.network = true, &[Network]),
        row(
            "network asked and allowed",
            |n| n.hardware.allows_network = true,
            |t| t.network = true,
            &[],
        ),
        row("network allowed, not asked", |n| n.hardware.allows_network = true, keep_task, &[]),
        row("a container task, node runs none", keep_node, |t| t.container = true, &[Runtime]),
        row(
            "a container task on a node that runs containers",
            |n| n.hardware.runs_containers = true,
            |t| t.container = true,
            &[],
        ),
        row(
            "runs containers, a sandbox task",
            |n| n.hardware.runs_containers = true,
            keep_task,
            &[],
        ),
        row("another GPU model", keep_node, |t| t.resources.gpu_model = "A100".into(), &[GpuModel]),
        row("model names ignore case", keep_node, |t| t.resources.gpu_model = "h100".into(), &[]),
        row(
            "another region",
            |n| n.hardware.region = "us-east".into(),
            |t| t.resources.region = "eu-west".into(),
            &[Region],
        ),
        row(
            "region names ignore case",
            |n| n.hardware.region = "eu-west".into(),
            |t| t.resources.region = "EU-West".into(),
            &[],
        ),
        row(
            "no region asked, any will do",
            |n| n.hardware.region = "ap-south".into(),
            keep_task,
            &[],
        ),
        row(
            "too few GPUs even idle",
            keep_node,
            |t| t.resources.gpu_count = 4,
            &[Hardware, Capacity],
        ),
        row("too little VRAM", keep_node, |t| t.resources.gpu_vram_mb = 100_000, &[Hardware]),
        row(
            "VRAM does not matter without GPUs",
            keep_node,
            |t| {
                t.resources.gpu_count = 0;
                t.resources.gpu_vram_mb = 100_000;
            },
            &[],
        ),
        row(
            "too few proven units",
            keep_node,
            |t| t.resources.compute_units_min = 2_000_000,
            &[ComputeUnits],
        ),
        row("reputation below the floor", keep_node, |t| t.reputation_min = 901, &[Reputation]),
        row("reputation at the floor", keep_node, |t| t.reputation_min = 900, &[]),
        row("price above the limit", keep_node, |t| t.max_price_per_hour = Amount(99), &[Price]),
        row("price at the limit", keep_node, |t| t.max_price_per_hour = Amount(100), &[]),
        row(
            "stake does not cover the value",
            keep_node,
            |t| t.value = Amount::tokens(10_001),
            &[Stake],
        ),
        row("stake covers the value exactly", keep_node, |t| t.value = Amount::tokens(10_000), &[]),
        row(
            "several failures are all reported",
            |n| n.online = false,
            |t| t.max_price_per_hour = Amount(1),
            &[Offline, Price],
        ),
        Row {
            name: "half the stake suffices at 50 % cover",
            node: keep_node,
            task: |t| t.value = Amount::tokens(20_000),
            free: None,
            params: |p| p.stake_cover_bps = 5_000,
            expected: &[],
        },
        Row {
            name: "busy GPUs",
            node: keep_node,
            task: keep_task,
            free: Some(|f| f.gpus = 0),
            params: keep_params,
            expected: &[Capacity],
        },
        Row {
            name: "a saturated node takes no task, even one asking for nothing",
            node: keep_node,
            task: |t| t.resources = Default::default(),
            free: Some(|f| f.cpu_cores = 0),
            params: keep_params,
            expected: &[Capacity],
        },
    ]
}

#[test]
fn each_requirement_is_judged_as_the_table_says() {
    for row in rows() {
        let mut node = gpu_node(1, "H100", 2, 100);
        let mut task = gpu_task(1, "H100", 1, 100);
        let mut params = MatchParams::default();
        (row.node)(&mut node);
        (row.task)(&mut task);
        (row.params)(&mut params);
        let mut free = Capacity::of(&node.hardware);
        if let Some(change) = row.free {
            change(&mut free);
        }
        let failed: Vec<Constraint> = unmet(&node, &free, &task, &params).iter().collect();
        assert_eq!(failed, row.expected, "{}", row.name);
        assert_eq!(
            unmet(&node, &free, &task, &params).first(),
            row.expected.first().copied(),
            "{}: first failure",
            row.name
        );
        let hardware_ok = !failed.contains(&Constraint::Hardware)
            && !failed.contains(&Constraint::GpuModel)
            && !failed.contains(&Constraint::Region);
        assert_eq!(
            hardware_ok,
            node.hardware.satisfies(&task.resources),
            "{}: agrees with Hardware::satisfies",
            row.name
        );
    }
}
