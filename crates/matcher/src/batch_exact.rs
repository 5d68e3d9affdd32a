//! Exact search for small groups of batch tasks. Tasks that share candidate nodes only among
//! themselves form a group; a group of at most `batch_exact_tasks_max` tasks is solved exactly
//! by branch and bound, starting from the heuristic's assignment as the bound to beat. Larger
//! groups keep the heuristic's answer. The search counts its steps against the same work bound.

use crate::batch::{Load, Problem};

/// Replaces the assignment of each small group with an exact optimum (most tasks placed, then
/// least cost) where the search finds a better one within the work left; returns the work spent.
pub(crate) fn polish(
    problem: &Problem,
    at: &mut [Option<u32>],
    tasks_max: usize,
    work_max: u64,
) -> u64 {
    let mut work = 0;
    for group in groups(problem) {
        if group.len() > tasks_max || work >= work_max {
            continue;
        }
        let mut search = Search::new(problem, &group, at, work_max - work);
        search.descend(0, 0, 0);
        work += search.work;
        if search.improved {
            for (task, index) in group.iter().zip(&search.best_at) {
                at[*task] = *index;
            }
        }
    }
    work
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
    fn new(problem: &'p Problem, tasks: &[usize], at: &[Option<u32>], work_max: u64) -> Search<'p> {
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
            load: vec![[0; 4]; problem.free.len()],
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
