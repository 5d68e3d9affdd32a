//! The verdict of a run: how what the supervisor observed maps onto a `Termination`.

use super::Termination;

const SIGNAL_KILL: i32 = 9;
const SIGNAL_CPU_LIMIT: i32 = 24;
const SIGNAL_FILE_SIZE_LIMIT: i32 = 25;
/// Exit codes above 128 up to 128 + this are how bubblewrap reports a task ended by a signal.
const SIGNAL_NUMBER_MAX: i32 = 64;

/// Termination, the task's exit code, the signal that ended it.
pub(crate) type Verdict = (Termination, Option<i32>, Option<i32>);

/// What the supervisor saw, reduced to what the verdict depends on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observations {
    pub kill_reason: Option<Termination>,
    /// bubblewrap's exit code: the task's, or 128 + the signal that ended the task.
    pub exit_code: Option<i32>,
    /// The signal that ended bubblewrap itself.
    pub signal: Option<i32>,
    pub cpu_ms: u64,
    pub cpu_limit_ms: u64,
    pub out_of_memory_reported: bool,
    /// The outputs and scratch directories hold the disk limit's worth (a write refused by
    /// `RLIMIT_FSIZE` leaves the file exactly at the limit; Python ignores `SIGXFSZ`).
    pub disk_full: bool,
    pub processes_peak: u32,
    pub processes_max: u32,
}

/// The verdict: termination, the task's exit code, the signal that ended it.
///
/// bubblewrap reports a task killed by signal `n` as exit code `128 + n`, so a task that
/// exits with such a code by itself is read as signaled (as shells do).
pub(crate) fn classify(observed: &Observations) -> Verdict {
    let at_process_limit = observed.processes_peak >= observed.processes_max;
    if let Some(reason) = observed.kill_reason {
        let reason = if reason == Termination::WallTimeExceeded && at_process_limit {
            Termination::ProcessLimitExceeded
        } else {
            reason
        };
        return (reason, None, Some(SIGNAL_KILL));
    }
    let code = match (observed.exit_code, observed.signal) {
        (Some(code), _) => code,
        (None, signal) => return (Termination::Signaled, None, signal),
    };
    if code > 128 && code <= 128 + SIGNAL_NUMBER_MAX {
        let signal = code - 128;
        let termination = match signal {
            SIGNAL_CPU_LIMIT => Termination::CpuTimeExceeded,
            SIGNAL_KILL if observed.cpu_ms >= observed.cpu_limit_ms => Termination::CpuTimeExceeded,
            SIGNAL_FILE_SIZE_LIMIT => Termination::DiskExceeded,
            _ if observed.disk_full => Termination::DiskExceeded,
            _ if observed.out_of_memory_reported => Termination::MemoryExceeded,
            _ => Termination::Signaled,
        };
        return (termination, None, Some(signal));
    }
    let termination = if code == 0 {
        Termination::Completed
    } else if observed.disk_full {
        Termination::DiskExceeded
    } else if observed.out_of_memory_reported {
        Termination::MemoryExceeded
    } else if at_process_limit {
        Termination::ProcessLimitExceeded
    } else {
        Termination::NonZeroExit
    };
    (termination, Some(code), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(exit_code: Option<i32>) -> Observations {
        Observations {
            exit_code,
            cpu_limit_ms: 10_000,
            processes_max: 8,
            processes_peak: 1,
            ..Observations::default()
        }
    }

    #[test]
    fn verdicts_follow_exit_codes_signals_and_limits() {
        use Termination::*;
        let cases: Vec<(&str, Observations, Verdict)> = vec![
            ("exit 0", observed(Some(0)), (Completed, Some(0), None)),
            ("exit 3", observed(Some(3)), (NonZeroExit, Some(3), None)),
            ("exit 128", observed(Some(128)), (NonZeroExit, Some(128), None)),
            ("SIGTERM", observed(Some(143)), (Signaled, None, Some(15))),
            ("SIGXCPU", observed(Some(152)), (CpuTimeExceeded, None, Some(24))),
            ("SIGXFSZ", observed(Some(153)), (DiskExceeded, None, Some(25))),
            ("exit 200", observed(Some(200)), (NonZeroExit, Some(200), None)),
            (
                "bwrap killed",
                Observations { signal: Some(9), ..observed(None) },
                (Signaled, None, Some(9)),
            ),
            (
                "SIGKILL after the CPU limit",
                Observations { cpu_ms: 10_500, ..observed(Some(137)) },
                (CpuTimeExceeded, None, Some(9)),
            ),
            (
                "MemoryError",
                Observations { out_of_memory_reported: true, ..observed(Some(1)) },
                (MemoryExceeded, Some(1), None),
            ),
            (
                "bad_alloc abort",
                Observations { out_of_memory_reported: true, ..observed(Some(134)) },
                (MemoryExceeded, None, Some(6)),
            ),
            (
                "write refused at the file size limit",
                Observations { disk_full: true, ..observed(Some(1)) },
                (DiskExceeded, Some(1), None),
            ),
            (
                "fork refused",
                Observations { processes_peak: 8, ..observed(Some(1)) },
                (ProcessLimitExceeded, Some(1), None),
            ),
            (
                "killed at wall time",
                Observations { kill_reason: Some(WallTimeExceeded), ..observed(None) },
                (WallTimeExceeded, None, Some(9)),
            ),
            (
                "fork bomb until wall time",
                Observations {
                    kill_reason: Some(WallTimeExceeded),
                    processes_peak: 8,
                    ..observed(None)
                },
                (ProcessLimitExceeded, None, Some(9)),
            ),
            (
                "memory total crossed",
                Observations { kill_reason: Some(MemoryExceeded), ..observed(None) },
                (MemoryExceeded, None, Some(9)),
            ),
            (
                "cancelled",
                Observations { kill_reason: Some(Cancelled), processes_peak: 8, ..observed(None) },
                (Cancelled, None, Some(9)),
            ),
        ];
        for (name, observations, expected) in cases {
            assert_eq!(classify(&observations), expected, "{name}");
        }
    }
}
