//! Reads the sandbox's process tree from `/proc`: membership, CPU time, memory, thread count.
//!
//! The tree is found from parent links, so it includes everything the task started: inside
//! the PID namespace orphans are re-parented to the namespace's init, which is a descendant
//! of the bubblewrap process the executor spawned.

use std::collections::BTreeMap;
use std::fs;

use rustix::process::{kill_process, Pid, Signal};

/// Processes scanned or sampled at once; beyond it a scan stops (a bound, not a policy).
pub(crate) const PROC_ENTRIES_MAX: usize = 1 << 20;

/// The fields of `/proc/<pid>/stat` the executor uses. Times are in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: i32,
    pub state: char,
    pub parent_pid: i32,
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub children_user_ticks: u64,
    pub children_system_ticks: u64,
    pub threads: u32,
    pub start_ticks: u64,
}

impl ProcStat {
    /// CPU time of the process and of its children it has waited for.
    pub fn cpu_ticks_with_children(&self) -> u64 {
        self.user_ticks
            .saturating_add(self.system_ticks)
            .saturating_add(self.children_user_ticks)
            .saturating_add(self.children_system_ticks)
    }
}

/// Parses `/proc/<pid>/stat`. The command name may contain spaces and parentheses, so the
/// fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    // Fields after the name, numbered as in proc(5) starting at 3 (state).
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |number: usize| rest.get(number - 3).copied();
    let number = |index: usize| -> Option<u64> { field(index)?.parse().ok() };
    Some(ProcStat {
        pid,
        state: field(3)?.chars().next()?,
        parent_pid: field(4)?.parse().ok()?,
        user_ticks: number(14)?,
        system_ticks: number(15)?,
        children_user_ticks: number(16)?,
        children_system_ticks: number(17)?,
        threads: u32::try_from(number(20)?).ok()?,
        start_ticks: number(22)?,
    })
}

/// Memory a process holds that no other process or the page cache could give back:
/// `RssAnon + RssShmem` from `/proc/<pid>/status`, in KiB. Shared library pages are left
/// out so that forked workers are not charged many times for the same interpreter.
pub(crate) fn parse_status_memory_kib(text: &str) -> Option<u64> {
    let mut total = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        if key == "RssAnon" || key == "RssShmem" {
            let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
            total = Some(total.unwrap_or(0u64).saturating_add(kib));
        }
    }
    total
}

/// The real user id from the `Uid:` line of `/proc/<pid>/status`.
pub(crate) fn parse_status_real_uid(text: &str) -> Option<u32> {
    let line = text.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parses a CPU list such as `0-3,8,10-11` (as in `Cpus_allowed_list`).
pub(crate) fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    const CPUS_MAX: u32 = 1 << 16;
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?),
            None => {
                let cpu = part.parse::<u32>().ok()?;
                (cpu, cpu)
            }
        };
        if first > last || last >= CPUS_MAX {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// The CPUs this process may run on, from `/proc/self/status`.
pub(crate) fn allowed_cpus() -> Option<Vec<u32>> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Cpus_allowed_list:"))?;
    parse_cpu_list(line.split_once(':')?.1)
}

/// Picks the CPUs of each run from the agent's allowed CPUs, rotating the first one so that
/// concurrent small runs spread over the machine.
#[derive(Debug, Default)]
pub(crate) struct CpuRotation {
    allowed: Vec<u32>,
    cursor: std::sync::atomic::AtomicUsize,
}

impl CpuRotation {
    pub fn new() -> Self {
        CpuRotation { allowed: allowed_cpus().unwrap_or_default(), cursor: Default::default() }
    }

    /// The CPUs a run asking for `cores` is pinned to; `None` means all allowed CPUs.
    pub fn pick(&self, cores: u32) -> Option<Vec<u32>> {
        let wanted = usize::try_from(cores).unwrap_or(usize::MAX);
        let available = self.allowed.len();
        if available == 0 || wanted >= available {
            return None;
        }
        let start = self.cursor.fetch_add(wanted, std::sync::atomic::Ordering::Relaxed);
        let mut cpus: Vec<u32> = (0..wanted)
            .map(|offset| self.allowed[start.wrapping_add(offset) % available])
            .collect();
        cpus.sort_unstable();
        Some(cpus)
    }
}

/// Reads one process's stat; `None` when it is gone (or unreadable, which is the same here).
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// One process of the tree, identified across samples by pid and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Member {
    pub pid: i32,
    pub start_ticks: u64,
}

/// One look at the tree below (and including) the spawned bubblewrap process.
#[derive(Clone, Debug, Default)]
pub(crate) struct TreeSample {
    pub members: Vec<Member>,
    /// Children of the root: the PID namespace's init (one, once it has started).
    pub root_children: Vec<i32>,
    pub cpu_ticks: u64,
    pub memory_kib: u64,
    /// Processes and threads of the task, the sandbox's own two processes excluded.
    pub task_threads: u32,
    /// The root process's own stat.
    pub root: Option<ProcStat>,
}

/// Samples the tree rooted at `root_pid`. Walks the kernel's per-thread `children` lists,
/// which costs in proportion to the tree, and scans all of `/proc` only on kernels built
/// without them. A process forked during the walk may be missed; the next sample sees it.
pub(crate) fn sample_tree(root_pid: i32) -> TreeSample {
    let Some(root) = read_stat(root_pid) else { return TreeSample::default() };
    let mut sample = TreeSample { root: Some(root), ..TreeSample::default() };
    let mut scanned: Option<BTreeMap<i32, Vec<i32>>> = None;
    let mut pending = vec![(root, 0u32)];
    while let Some((stat, depth)) = pending.pop() {
        if sample.members.len() >= PROC_ENTRIES_MAX {
            break;
        }
        sample.members.push(Member { pid: stat.pid, start_ticks: stat.start_ticks });
        sample.cpu_ticks = sample.cpu_ticks.saturating_add(stat.cpu_ticks_with_children());
        sample.memory_kib = sample.memory_kib.saturating_add(read_memory_kib(stat.pid));
        // Depth 0 is bubblewrap outside, depth 1 the namespace's init: sandbox machinery.
        if depth >= 2 {
            sample.task_threads = sample.task_threads.saturating_add(stat.threads);
        }
        let children = match children_of(stat.pid) {
            Some(children) => children,
            None => scanned.get_or_insert_with(scan_parents).remove(&stat.pid).unwrap_or_default(),
        };
        if depth == 0 {
            sample.root_children.clone_from(&children);
        }
        for child in children {
            // Re-check the parent: the pid may have exited and been reused since the listing.
            if let Some(child_stat) = read_stat(child).filter(|c| c.parent_pid == stat.pid) {
                pending.push((child_stat, depth.saturating_add(1)));
            }
        }
    }
    sample
}

/// Children of every thread of `pid`, from `/proc/<pid>/task/<tid>/children`; `None` when
/// the kernel does not provide these files.
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let threads = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut children = Vec::new();
    let mut any_list = false;
    for thread in threads.flatten() {
        let Ok(list) = fs::read_to_string(thread.path().join("children")) else { continue };
        any_list = true;
        children.extend(list.split_whitespace().filter_map(|pid| pid.parse::<i32>().ok()));
    }
    any_list.then_some(children)
}

/// Parent pid to child pids, from one scan of all of `/proc`.
fn scan_parents() -> BTreeMap<i32, Vec<i32>> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let Ok(entries) = fs::read_dir("/proc") else { return children };
    for entry in entries.flatten().take(PROC_ENTRIES_MAX) {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            children.entry(stat.parent_pid).or_default().push(pid);
        }
    }
    children
}

fn read_memory_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| parse_status_memory_kib(&text))
        .unwrap_or(0)
}

/// Whether `member` is still a live (not yet exited) process.
pub(crate) fn is_alive(member: Member) -> bool {
    read_stat(member.pid)
        .is_some_and(|stat| stat.start_ticks == member.start_ticks && stat.state != 'Z')
}

/// Live processes whose real user id is `uid`.
pub(crate) fn processes_of_uid(uid: u32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let mut pids = Vec::new();
    for entry in entries.flatten().take(PROC_ENTRIES_MAX) {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let owned = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|text| parse_status_real_uid(&text))
            == Some(uid);
        if owned && read_stat(pid).is_some_and(|stat| stat.state != 'Z') {
            pids.push(pid);
        }
    }
    pids
}

/// Sends `SIGKILL`; a process that is already gone is not an error.
pub(crate) fn kill(pid: i32) {
    if let Some(pid) = Pid::from_raw(pid) {
        // ESRCH (already gone) and EPERM (pid reused by someone else's process) both mean
        // there is nothing of ours left to kill under this pid.
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Clock ticks per second of the times in `/proc/<pid>/stat`.
pub(crate) fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (python3 (worker) x) S 4200 4242 4242 0 -1 4194560 1000 0 0 0 \
        150 25 7 3 20 0 3 0 987654 30000000 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 \
        17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn stat_is_parsed_even_with_parentheses_and_spaces_in_the_name() {
        let stat = parse_stat(STAT).expect("parses");
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.parent_pid, 4200);
        assert_eq!((stat.user_ticks, stat.system_ticks), (150, 25));
        assert_eq!((stat.children_user_ticks, stat.children_system_ticks), (7, 3));
        assert_eq!(stat.threads, 3);
        assert_eq!(stat.start_ticks, 987654);
        assert_eq!(stat.cpu_ticks_with_children(), 185);
    }

    #[test]
    fn truncated_or_garbled_stat_is_rejected() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (sh) S 1 2 3"), None);
        assert_eq!(parse_stat("x (sh) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5"), None);
    }

    #[test]
    fn status_memory_counts_anonymous_and_shared_memory_only() {
        let status = "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\nVmRSS:\t  9000 kB\n\
            RssAnon:\t    1200 kB\nRssFile:\t    7000 kB\nRssShmem:\t     300 kB\n";
        assert_eq!(parse_status_memory_kib(status), Some(1500));
        assert_eq!(parse_status_real_uid(status), Some(1000));
        assert_eq!(parse_status_memory_kib("Name:\tkthreadd\n"), None);
        assert_eq!(parse_status_memory_kib("RssAnon:\tlots kB\n"), None);
    }

    #[test]
    fn cpu_lists_expand_ranges_and_reject_nonsense() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
    }

    #[test]
    fn a_child_process_is_found_by_both_walks() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("sleep");
        let own = i32::try_from(std::process::id()).expect("pid fits");
        let child_pid = i32::try_from(child.id()).expect("pid fits");
        let sample = sample_tree(own);
        let scanned = scan_parents();
        let listed = children_of(own);
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(sample.root.is_some());
        assert!(sample.memory_kib > 0);
        assert!(sample.members.iter().any(|member| member.pid == child_pid));
        assert!(sample.root_children.contains(&child_pid));
        assert!(listed.is_some_and(|children| children.contains(&child_pid)));
        assert!(scanned.get(&own).is_some_and(|children| children.contains(&child_pid)));
        assert_eq!(sample_tree(-1).root, None);
    }
}
