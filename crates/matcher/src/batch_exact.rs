//! Exact search for batch tasks. Tasks that share candidate nodes only among themselves form a
//! group; a group of at most `batch_exact_tasks_max` tasks is solved exactly by branch and bound,
//! starting from the heuristic's assignment as the bound to beat. A larger group is improved by
//! exact search over neighbourhoods: for each set of nodes of [`node_sets`], the tasks on those
//! nodes and the unplaced tasks that could go there (at most `batch_neighbourhood_tasks_max` of
//! them) are re-solved exactly with every other task where it is; passes repeat while one
//! improves. The searches count their steps against the
//! same work bound.

use crate::batch::{Load, Problem};

/// Replaces the assignment of each group with a better one where the searches find it within
/// the work left (most tasks placed, then least cost); returns the work spent.
pub(crate) fn polish(
    problem: &Problem,
    at: &mut [Option<u32>],
    (exact_tasks_max, neighbourhood_tasks_max): (usize, usize),
    work_max: u64,
) -> u64 {
    let mut work = 0;
    for group in groups(problem) {
        if work >= work_max {
            break;
        }
        work += if group.len() <= exact_tasks_max {
            resolve(problem, at, &group, work_max - work).0
        } else if neighbourhood_tasks_max > 0 {
            neighbourhoods(problem, at, &group, neighbourhood_tasks_max, work_max - work)
        } else {
            0
        };
    }
    work
}

/// Re-solves `tasks` exactly with every other task kept where `at` puts it; applies a better
/// assignment. Returns the work spent and whether it improved.
fn resolve(
    problem: &Problem,
    at: &mut [Option<u32>],
    tasks: &[usize],
    work_max: u64,
) -> (u64, bool) {
    let mut load = vec![[0; 4]; problem.free.len()];
    for (task, index) in at.iter().enumerate() {
        if let (Some(index), false) = (index, tasks.contains(&task)) {
            let node = problem.candidates[task][*index as usize].0 as usize;
            (0..4).for_each(|d| load[node][d] += problem.needs[task][d]);
        }
    }
    let mut search = Search::new(problem, tasks, at, load, work_max);
    search.descend(0, 0, 0);
    if search.improved {
        for (task, index) in tasks.iter().zip(&search.best_at) {
            at[*task] = *index;
        }
    }
    (search.work + at.len() as u64, search.improved)
}

/// Improves a group too large to solve whole, neighbourhood by neighbourhood (see the module
/// documentation). Every accepted step lowers (unplaced tasks, cost), so the passes end.
fn neighbourhoods(
    problem: &Problem,
    at: &mut [Option<u32>],
    group: &[usize],
    tasks_max: usize,
    work_max: u64,
) -> u64 {
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for &task in group {
        let nodes = &problem.candidates[task];
        for (i, (a, _)) in nodes.iter().enumerate() {
            pairs.extend(nodes[i + 1..].iter().map(|(b, _)| (*a.min(b), *a.max(b))));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let sets = node_sets(&pairs);
    let mut work = sets.iter().map(|set| set.len() as u64).sum::<u64>();
    let on = |at: &[Option<u32>], task: usize, nodes: &[u32]| {
        at[task].is_some_and(|index| nodes.contains(&problem.candidates[task][index as usize].0))
    };
    loop {
        let mut improved = false;
        for nodes in &sets {
            if work >= work_max {
                return work;
            }
            let mut tasks: Vec<usize> =
                group.iter().copied().filter(|t| on(at, *t, nodes)).collect();
            let could = |t: &usize| {
                at[*t].is_none() && problem.candidates[*t].iter().any(|(n, _)| nodes.contains(n))
            };
            tasks.extend(group.iter().copied().filter(could));
            tasks.truncate(tasks_max);
            work += group.len() as u64;
            let (spent, better) = resolve(problem, at, &tasks, work_max.saturating_sub(work));
            work += spent;
            improved |= better;
        }
        if !improved {
            return work;
        }
    }
}

/// Most nodes of a group for which every set of four and five of its nodes is a neighbourhood.
const SMALL_GROUP_NODES: usize = 12;

/// The neighbourhoods of a group, as sets of nodes: each pair some task chooses between, then
/// each triple joined by two such pairs, then, in a group of at most [`SMALL_GROUP_NODES`]
/// nodes, every set of four and of five.
fn node_sets(pairs: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let mut sets: Vec<Vec<u32>> = pairs.iter().map(|(a, b)| vec![*a, *b]).collect();
    let mut nodes: Vec<u32> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut triples: Vec<Vec<u32>> = Vec::new();
    for &middle in &nodes {
        let linked: Vec<u32> = pairs
            .iter()
            .filter_map(|&(a, b)| (a == middle).then_some(b).or((b == middle).then_some(a)))
            .collect();
        for (i, a) in linked.iter().enumerate() {
            for c in &linked[i + 1..] {
                let mut set = vec![*a, middle, *c];
                set.sort_unstable();
                triples.push(set);
            }
        }
    }
    triples.sort_unstable();
    triples.dedup();
    sets.extend(triples);
    if nodes.len() <= SMALL_GROUP_NODES {
        for size in 4..=5 {
            for mask in 0u32..1 << nodes.len() {
                if mask.count_ones() == size {
                    let set = (0..nodes.len()).filter(|i| mask >> i & 1 == 1).map(|i| nodes[i]);
                    sets.push(set.collect());
                }
            }
        }
    }
    sets
}

/// Groups of tasks linked by shared candidate nodes, each in task order, ordered by first task.
fn groups(problem: &Problem) -> Vec<Vec<usize>> {
    let tasks = problem.needs.len();
    let mut parent: Vec<usize> = (0..tasks).collect();
    fn root(parent: &mut [usize], mut task: usize) -> usize {
        while parent[task] != task {
            parent[task] = parent[parent[task]];
            task = parent[task];
        }
        task
    }
    let mut first_on_node: Vec<Option<usize>> = vec![None; problem.free.len()];
    for (task, candidates) in problem.candidates.iter().enumerate() {
        for (node, _) in candidates {
            match first_on_node[*node as usize] {
                None => first_on_node[*node as usize] = Some(task),
                Some(other) => {
                    let (a, b) = (root(&mut parent, task), root(&mut parent, other));
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); tasks];
    for task in 0..tasks {
        let group = root(&mut parent, task);
        groups[group].push(task);
    }
    groups.retain(|group| !group.is_empty());
    groups
}

struct Search<'p> {
    problem: &'p Problem,
    tasks: Vec<usize>,
    load: Vec<Load>,
    current: Vec<Option<u32>>,
    best_at: Vec<Option<u32>>,
    best: (usize, i128),
    /// Least cost of placing the tasks from position i on (each at its cheapest candidate).
    cheapest_rest: Vec<i128>,
    improved: bool,
    work: u64,
    work_max: u64,
}

impl<'p> Search<'p> {
    /// A search over `tasks`, on nodes already holding `load` of the other tasks.
    fn new(
        problem: &'p Problem,
        tasks: &[usize],
        at: &[Option<u32>],
        load: Vec<Load>,
        work_max: u64,
    ) -> Search<'p> {
        let incumbent: Vec<Option<u32>> = tasks.iter().map(|t| at[*t]).collect();
        let cost = |task: usize, index: u32| problem.candidates[task][index as usize].1;
        let placed = incumbent.iter().filter(|a| a.is_some()).count();
        let total = tasks.iter().zip(&incumbent).filter_map(|(t, a)| a.map(|i| cost(*t, i))).sum();
        let mut cheapest_rest = vec![0i128; tasks.len() + 1];
        for i in (0..tasks.len()).rev() {
            let cheapest = problem.candidates[tasks[i]].iter().map(|(_, c)| *c).min().unwrap_or(0);
            cheapest_rest[i] = cheapest_rest[i + 1] + cheapest;
        }
        Search {
            problem,
            tasks: tasks.to_vec(),
            load,
            current: vec![None; tasks.len()],
            best_at: incumbent,
            best: (placed, total),
            cheapest_rest,
            improved: false,
            work: 0,
            work_max,
        }
    }

    fn descend(&mut self, i: usize, placed: usize, cost: i128) {
        self.work += 1;
        if self.work > self.work_max {
            return;
        }
        let reachable = placed + (self.tasks.len() - i);
        if reachable < self.best.0
            || (reachable == self.best.0 && cost + self.cheapest_rest[i] >= self.best.1)
        {
            return;
        }
        if i == self.tasks.len() {
            self.best = (placed, cost);
            self.best_at = self.current.clone();
            self.improved = true;
            return;
        }
        let task = self.tasks[i];
        let need = self.problem.needs[task];
        for (index, (node, price)) in self.problem.candidates[task].iter().enumerate() {
            let node = *node as usize;
            let free = &self.problem.free[node];
            let fits = (0..4)
                .all(|d| self.load[node][d].checked_add(need[d]).is_some_and(|l| l <= free[d]));
            if !fits {
                continue;
            }
            (0..4).for_each(|d| self.load[node][d] += need[d]);
            self.current[i] = Some(index as u32);
            self.descend(i + 1, placed + 1, cost + price);
            self.current[i] = None;
            (0..4).for_each(|d| self.load[node][d] -= need[d]);
        }
        self.descend(i + 1, placed, cost);
    }
}
