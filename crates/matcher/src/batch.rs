//! The batch optimizer: assigns a block's `Batch` tasks jointly, placing as many as it can at
//! the least total cost.
//!
//! 1. Successive shortest augmenting paths (the Hungarian method in min-cost-flow form) on the
//!    bipartite graph of tasks and their cheapest candidate nodes. Each augmentation places one
//!    more task along the cheapest chain of moves ("task A takes node X, whose task B moves to
//!    node Y, which has room"), found by a Bellman-Ford search in layers, one layer per move.
//!    With nodes that hold one task each this alone is exactly the Hungarian method.
//! 2. Nodes hold several tasks under a capacity in four dimensions, where chains that move one
//!    task per node miss some packings. When no chain places another task, two local moves
//!    continue: an exchange (drop one placed task, place another or the same one elsewhere by
//!    a chain, if that is cheaper or frees room), and a forced move (put a task on a node,
//!    evict what is in its way, place the evicted tasks again by chains; kept if it places one
//!    more task or lowers the cost). Every step lowers (unplaced tasks, cost, load), so the
//!    search ends; the tests measure it against an exact solver.
//!
//! Every move is checked against the node's capacity in all dimensions, and a chain is applied
//! only if every node it touches still fits. The work (relaxations and task moves) is bounded
//! per call; the optimizer stops with what it has when the bound is reached.

/// Occupancy or capacity: CPU cores, memory, disk, GPUs.
pub(crate) type Load = [u64; 4];

/// A joint assignment problem.
#[derive(Clone, Debug, Default)]
pub(crate) struct Problem {
    /// What each task occupies.
    pub needs: Vec<Load>,
    /// What each node has free.
    pub free: Vec<Load>,
    /// Per task, its candidate nodes and their costs.
    pub candidates: Vec<Vec<(u32, i128)>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Solution {
    /// Per task, the node it goes to.
    pub assigned: Vec<Option<u32>>,
}

const NONE: u32 = u32::MAX;

/// A state is "task t enters candidate c"; a label is the cheapest chain found ending there.
#[derive(Clone, Copy, Debug)]
struct Label {
    state: u32,
    cost: i128,
    /// The task the chain places (its first move).
    origin: u32,
    /// Position of the previous state's label in the previous layer.
    previous: u32,
}

struct Solver<'p> {
    problem: &'p Problem,
    /// First state of each task; states of task t are `offsets[t]..offsets[t + 1]`.
    offsets: Vec<u32>,
    /// The task of each state.
    task_of: Vec<u32>,
    load: Vec<Load>,
    on_node: Vec<Vec<u32>>,
    /// The candidate index each task is assigned to.
    at: Vec<Option<u32>>,
    /// The largest free capacity of any node, per dimension (to weigh tasks).
    capacity: Load,
    /// A task chains may not move (the one a forced move just placed).
    pinned: Option<u32>,
    work: u64,
}

/// Solves a batch: heuristic first, then exact search over groups of at most `exact_tasks_max`
/// tasks and over neighbourhoods of at most `neighbourhood_tasks_max` tasks in larger groups,
/// all within `work_max`.
pub(crate) fn solve(
    problem: &Problem,
    work_max: u64,
    moves_max: u32,
    exact_tasks_max: usize,
    neighbourhood_tasks_max: usize,
) -> Solution {
    let mut solver = Solver::new(problem);
    let moves_max = moves_max.max(1);
    while solver.work < work_max {
        let improved = solver.augment(work_max, moves_max)
            || solver.exchange(work_max, moves_max)
            || solver.force(work_max, moves_max);
        if !improved {
            break;
        }
    }
    let work_left = work_max.saturating_sub(solver.work);
    let limits = (exact_tasks_max, neighbourhood_tasks_max);
    crate::batch_exact::polish(problem, &mut solver.at, limits, work_left);
    let assigned = (0..problem.needs.len())
        .map(|task| solver.at[task].map(|c| problem.candidates[task][c as usize].0))
        .collect();
    Solution { assigned }
}

impl<'p> Solver<'p> {
    fn new(problem: &'p Problem) -> Solver<'p> {
        let mut offsets = vec![0u32];
        let mut task_of = Vec::new();
        for (task, candidates) in problem.candidates.iter().enumerate() {
            task_of.extend(std::iter::repeat_n(task as u32, candidates.len()));
            offsets.push(task_of.len() as u32);
        }
        Solver {
            problem,
            offsets,
            task_of,
            load: vec![[0; 4]; problem.free.len()],
            on_node: vec![Vec::new(); problem.free.len()],
            at: vec![None; problem.needs.len()],
            capacity: [0, 1, 2, 3].map(|d| problem.free.iter().map(|f| f[d]).max().unwrap_or(0)),
            pinned: None,
            work: 0,
        }
    }

    fn candidate(&self, state: u32) -> (u32, u32, i128) {
        let task = self.task_of[state as usize];
        let index = state - self.offsets[task as usize];
        let (node, cost) = self.problem.candidates[task as usize][index as usize];
        (task, node, cost)
    }

    fn current_cost(&self, task: u32) -> i128 {
        let index = self.at[task as usize].expect("only placed tasks move");
        self.problem.candidates[task as usize][index as usize].1
    }

    /// Whether `node` fits `add` after giving up `remove`.
    fn fits(&self, node: u32, add: &Load, remove: Option<&Load>) -> bool {
        let (load, free) = (&self.load[node as usize], &self.problem.free[node as usize]);
        (0..4).all(|d| {
            let kept = load[d] - remove.map_or(0, |r| r[d]);
            kept.checked_add(add[d]).is_some_and(|total| total <= free[d])
        })
    }

    /// Places one more task along the cheapest valid chain; false if none.
    fn augment(&mut self, work_max: u64, moves_max: u32) -> bool {
        match self.cheapest_chain(work_max, moves_max, None) {
            Some((chain, _)) => {
                self.apply(&chain);
                true
            }
            None => false,
        }
    }

    /// Trades one placed task for a cheaper chain: drops it, then places a task (another, or
    /// the same elsewhere) along the cheapest valid chain, if that lowers the total cost, or
    /// keeps it and frees capacity (which may let a later augmentation place one more task).
    /// Each trade lowers (cost, load), so trading ends.
    fn exchange(&mut self, work_max: u64, moves_max: u32) -> bool {
        for dropped in 0..self.problem.needs.len() as u32 {
            let Some(index) = self.at[dropped as usize] else { continue };
            if self.work >= work_max {
                return false;
            }
            let dropped_cost = self.current_cost(dropped);
            self.unassign(dropped);
            if let Some((chain, cost)) = self.cheapest_chain(work_max, moves_max, None) {
                let entering = self.candidate(chain[0]).0;
                let gain = (cost, self.weight(entering)).cmp(&(dropped_cost, self.weight(dropped)));
                if gain.is_lt() {
                    self.apply(&chain);
                    return true;
                }
            }
            self.assign(dropped, index);
        }
        false
    }

    /// Moves by force: puts a task (unplaced, or placed elsewhere) on one of its candidate
    /// nodes, taking off that node the tasks in its way (heaviest first), places those again
    /// along chains where it can, then places whatever else fits. Kept only if the result places
    /// more tasks, or as many at a lower (cost, load).
    fn force(&mut self, work_max: u64, moves_max: u32) -> bool {
        let before = self.score();
        for task in 0..self.problem.needs.len() as u32 {
            for index in 0..self.problem.candidates[task as usize].len() as u32 {
                if self.at[task as usize] == Some(index) {
                    continue;
                }
                if self.work >= work_max {
                    return false;
                }
                // Saving, scoring and restoring each touch every task.
                self.work += 3 * self.problem.needs.len() as u64;
                let saved = self.at.clone();
                if self.force_one(task, index, work_max, moves_max) && self.score() < before {
                    return true;
                }
                self.restore(saved);
            }
        }
        false
    }

    /// What the optimizer lowers: fewer unplaced tasks first, then cost, then load.
    fn score(&self) -> (usize, i128, u128) {
        let mut cost = 0;
        let mut load = 0;
        for task in 0..self.problem.needs.len() as u32 {
            if self.at[task as usize].is_some() {
                cost += self.current_cost(task);
                load += self.weight(task);
            }
        }
        (self.at.iter().filter(|at| at.is_none()).count(), cost, load)
    }

    fn force_one(&mut self, task: u32, index: u32, work_max: u64, moves_max: u32) -> bool {
        let node = self.problem.candidates[task as usize][index as usize].0;
        let need = self.problem.needs[task as usize];
        self.unassign(task);
        let mut in_the_way = self.on_node[node as usize].clone();
        in_the_way.sort_by_key(|other| (std::cmp::Reverse(self.weight(*other)), *other));
        let mut evicted = Vec::new();
        for other in in_the_way {
            if self.fits(node, &need, None) {
                break;
            }
            self.unassign(other);
            evicted.push(other);
        }
        if !self.fits(node, &need, None) {
            return false;
        }
        self.assign(task, index);
        self.work += evicted.len() as u64 + 1;
        // The evicted tasks go elsewhere if they can; then any unplaced task may fill the room.
        self.pinned = Some(task);
        for other in evicted {
            if let Some((chain, _)) = self.cheapest_chain(work_max, moves_max, Some(other)) {
                self.apply(&chain);
            }
        }
        while self.work < work_max && self.augment(work_max, moves_max) {}
        self.pinned = None;
        true
    }

    /// Puts every task back where `at` says.
    fn restore(&mut self, at: Vec<Option<u32>>) {
        self.load.iter_mut().for_each(|load| *load = [0; 4]);
        self.on_node.iter_mut().for_each(Vec::clear);
        self.at = vec![None; at.len()];
        for (task, index) in at.into_iter().enumerate() {
            if let Some(index) = index {
                self.assign(task as u32, index);
            }
        }
    }

    /// A task's share of the problem's capacity, summed over dimensions (integer, scaled).
    fn weight(&self, task: u32) -> u128 {
        let need = &self.problem.needs[task as usize];
        (0..4).map(|d| (u128::from(need[d]) << 32) / u128::from(self.capacity[d].max(1))).sum()
    }

    fn unassign(&mut self, task: u32) {
        let Some(index) = self.at[task as usize].take() else { return };
        let node = self.problem.candidates[task as usize][index as usize].0 as usize;
        let need = self.problem.needs[task as usize];
        (0..4).for_each(|d| self.load[node][d] -= need[d]);
        self.on_node[node].retain(|t| *t != task);
    }

    fn assign(&mut self, task: u32, index: u32) {
        let node = self.problem.candidates[task as usize][index as usize].0 as usize;
        let need = self.problem.needs[task as usize];
        (0..4).for_each(|d| self.load[node][d] += need[d]);
        self.on_node[node].push(task);
        self.at[task as usize] = Some(index);
    }

    /// The cheapest valid chain placing one more unplaced task, and its cost.
    fn cheapest_chain(
        &mut self,
        work_max: u64,
        moves_max: u32,
        only: Option<u32>,
    ) -> Option<(Vec<u32>, i128)> {
        let states = *self.offsets.last().unwrap_or(&0) as usize;
        self.work += states as u64;
        let mut best = vec![i128::MAX; states];
        let mut position = vec![NONE; states];
        let mut first = Vec::new();
        for task in 0..self.problem.needs.len() {
            if self.at[task].is_some() || only.is_some_and(|only| only as usize != task) {
                continue;
            }
            for state in self.offsets[task]..self.offsets[task + 1] {
                let cost = self.candidate(state).2;
                best[state as usize] = cost;
                first.push(Label { state, cost, origin: task as u32, previous: NONE });
            }
        }
        let mut layers = vec![first];
        // Equal costs prefer placing the lighter task: it leaves more room for others.
        let mut ends: Vec<(i128, u128, u32, u32)> = Vec::new();
        let mut layer = 0;
        while layer < layers.len() && self.work < work_max {
            let mut next: Vec<Label> = Vec::new();
            for (index, label) in layers[layer].iter().enumerate() {
                if label.cost > best[label.state as usize] {
                    continue; // a cheaper chain reaches the same state
                }
                self.work += 1;
                let (task, node, _) = self.candidate(label.state);
                let need = &self.problem.needs[task as usize];
                if self.fits(node, need, None) || self.fits_after_chain(&layers, layer, index) {
                    ends.push((label.cost, self.weight(label.origin), layer as u32, index as u32));
                }
                if layer + 1 >= moves_max as usize {
                    continue;
                }
                for &other in &self.on_node[node as usize] {
                    let other_need = &self.problem.needs[other as usize];
                    if other == task
                        || Some(other) == self.pinned
                        || !self.fits(node, need, Some(other_need))
                    {
                        continue;
                    }
                    let base = label.cost - self.current_cost(other);
                    for state in self.offsets[other as usize]..self.offsets[other as usize + 1] {
                        let (_, to, cost) = self.candidate(state);
                        self.work += 1;
                        let total = base + cost;
                        if to == node || total > best[state as usize] {
                            continue;
                        }
                        best[state as usize] = total;
                        let label = Label {
                            state,
                            cost: total,
                            origin: label.origin,
                            previous: index as u32,
                        };
                        match position[state as usize] {
                            NONE => {
                                position[state as usize] = next.len() as u32;
                                next.push(label);
                            }
                            at if total < next[at as usize].cost => next[at as usize] = label,
                            _ => {}
                        }
                    }
                }
            }
            for label in &next {
                position[label.state as usize] = NONE;
            }
            if !next.is_empty() {
                layers.push(next);
            }
            layer += 1;
        }
        ends.sort_unstable();
        for (cost, _, layer, index) in ends {
            let chain = chain(&layers, layer, index);
            if self.valid(&chain) {
                return Some((chain, cost));
            }
        }
        None
    }

    /// Whether the chain ending at `layers[layer][index]` can end there because an earlier move
    /// of the chain took a task off the node it ends on (the node is revisited).
    fn fits_after_chain(&mut self, layers: &[Vec<Label>], layer: usize, index: usize) -> bool {
        if layer == 0 {
            return false;
        }
        let chain = chain(layers, layer as u32, index as u32);
        self.work += chain.len() as u64;
        let node = self.candidate(chain[chain.len() - 1]).1;
        let revisited = chain[..chain.len() - 1].iter().any(|s| self.candidate(*s).1 == node);
        revisited && self.valid(&chain)
    }

    /// Whether a chain moves each task once and leaves every node it touches within capacity.
    fn valid(&self, chain: &[u32]) -> bool {
        let mut touched: Vec<(u32, Load)> = Vec::new();
        let mut tasks: Vec<u32> = Vec::new();
        for &state in chain {
            let (task, node, _) = self.candidate(state);
            if tasks.contains(&task) {
                return false;
            }
            tasks.push(task);
            let need = self.problem.needs[task as usize];
            if let Some(index) = self.at[task as usize] {
                let from = self.problem.candidates[task as usize][index as usize].0;
                adjust(&mut touched, &self.load, from, &need, false);
            }
            adjust(&mut touched, &self.load, node, &need, true);
        }
        touched.iter().all(|(node, load)| {
            let free = &self.problem.free[*node as usize];
            (0..4).all(|d| load[d] <= free[d])
        })
    }

    fn apply(&mut self, chain: &[u32]) {
        for &state in chain {
            let task = self.task_of[state as usize];
            self.unassign(task);
            self.assign(task, state - self.offsets[task as usize]);
        }
    }
}

/// The states of the chain ending at `layers[layer][index]`, first move first.
fn chain(layers: &[Vec<Label>], layer: u32, index: u32) -> Vec<u32> {
    let mut chain = Vec::with_capacity(layer as usize + 1);
    let (mut layer, mut index) = (layer as usize, index);
    loop {
        let label = layers[layer][index as usize];
        chain.push(label.state);
        if label.previous == NONE {
            break;
        }
        layer -= 1;
        index = label.previous;
    }
    chain.reverse();
    chain
}

/// Adds (or removes) `need` to a node's load in a list of touched nodes.
fn adjust(touched: &mut Vec<(u32, Load)>, loads: &[Load], node: u32, need: &Load, add: bool) {
    let at = match touched.iter().position(|(n, _)| *n == node) {
        Some(at) => at,
        None => {
            touched.push((node, loads[node as usize]));
            touched.len() - 1
        }
    };
    let load = &mut touched[at].1;
    for d in 0..4 {
        load[d] =
            if add { load[d].saturating_add(need[d]) } else { load[d].saturating_sub(need[d]) };
    }
}
