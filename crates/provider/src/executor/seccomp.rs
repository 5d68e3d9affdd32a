//! The sandbox's seccomp filter: a classic BPF program, assembled here and handed to bubblewrap
//! (`--seccomp FD`), that refuses the system calls a task has no use for and that expose the
//! most kernel attack surface: new namespaces (a nested user namespace would hand the task a
//! fresh set of capabilities), mounts, tracing, keyrings, eBPF, perf events, userfaultfd,
//! io_uring, kernel modules and kexec, clocks, swap and reboot. They fail with `EPERM`;
//! `clone3` fails with `ENOSYS` (its flags lie in memory a filter cannot read), so C libraries
//! fall back to `clone`, whose namespace flags the filter does read.

use std::io::{Seek, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{memfd_create, MemfdFlags};

use super::ExecutorError;

/// `AUDIT_ARCH_X86_64`: the only architecture the syscall table below is written for.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// x32 system calls (the same kernel entry with this bit set) are refused as a whole.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const SYS_CLONE: u32 = 56;
const SYS_CLONE3: u32 = 435;
/// `CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME`.
const CLONE_NAMESPACE_FLAGS: u32 = 0x0002_0000
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x80;

/// x86_64 system calls refused with `EPERM`.
const DENIED: [(u32, &str); 52] = [
    (101, "ptrace"),
    (103, "syslog"),
    (134, "uselib"),
    (153, "vhangup"),
    (155, "pivot_root"),
    (156, "_sysctl"),
    (159, "adjtimex"),
    (163, "acct"),
    (164, "settimeofday"),
    (165, "mount"),
    (166, "umount2"),
    (167, "swapon"),
    (168, "swapoff"),
    (169, "reboot"),
    (172, "iopl"),
    (173, "ioperm"),
    (174, "create_module"),
    (175, "init_module"),
    (176, "delete_module"),
    (177, "get_kernel_syms"),
    (178, "query_module"),
    (179, "quotactl"),
    (180, "nfsservctl"),
    (212, "lookup_dcookie"),
    (227, "clock_settime"),
    (246, "kexec_load"),
    (248, "add_key"),
    (249, "request_key"),
    (250, "keyctl"),
    (272, "unshare"),
    (298, "perf_event_open"),
    (303, "name_to_handle_at"),
    (304, "open_by_handle_at"),
    (305, "clock_adjtime"),
    (308, "setns"),
    (310, "process_vm_readv"),
    (311, "process_vm_writev"),
    (312, "kcmp"),
    (313, "finit_module"),
    (320, "kexec_file_load"),
    (321, "bpf"),
    (323, "userfaultfd"),
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (427, "io_uring_register"),
    (428, "open_tree"),
    (429, "move_mount"),
    (430, "fsopen"),
    (431, "fsconfig"),
    (432, "fsmount"),
    (433, "fspick"),
    (442, "mount_setattr"),
];

// Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
const LOAD_WORD_ABSOLUTE: u16 = 0x20;
const JUMP_IF_EQUAL: u16 = 0x15;
const JUMP_IF_GREATER_OR_EQUAL: u16 = 0x35;
const JUMP_IF_ANY_BIT: u16 = 0x45;
const RETURN: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7FFF_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
// Offsets in `struct seccomp_data`: nr, arch, then args[0] (its low half, little-endian).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;

/// One `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Instruction {
    code: u16,
    jump_true: u8,
    jump_false: u8,
    k: u32,
}

const fn op(code: u16, k: u32) -> Instruction {
    Instruction { code, jump_true: 0, jump_false: 0, k }
}

/// `if accumulator == k` skip nothing, else skip the next instruction.
const fn unless_equal_skip_one(k: u32) -> Instruction {
    Instruction { code: JUMP_IF_EQUAL, jump_true: 0, jump_false: 1, k }
}

fn program() -> Vec<Instruction> {
    let mut program = vec![
        op(LOAD_WORD_ABSOLUTE, OFFSET_ARCH),
        Instruction { code: JUMP_IF_EQUAL, jump_true: 1, jump_false: 0, k: AUDIT_ARCH_X86_64 },
        op(RETURN, RET_KILL_PROCESS),
        op(LOAD_WORD_ABSOLUTE, OFFSET_NR),
        Instruction {
            code: JUMP_IF_GREATER_OR_EQUAL,
            jump_true: 0,
            jump_false: 1,
            k: X32_SYSCALL_BIT,
        },
        op(RETURN, RET_ERRNO | EPERM),
    ];
    for (number, _) in DENIED.iter() {
        program.push(unless_equal_skip_one(*number));
        program.push(op(RETURN, RET_ERRNO | EPERM));
    }
    program.push(unless_equal_skip_one(SYS_CLONE3));
    program.push(op(RETURN, RET_ERRNO | ENOSYS));
    // clone: refused when its flags ask for any new namespace; otherwise, like every other
    // call, allowed.
    program.push(Instruction { code: JUMP_IF_EQUAL, jump_true: 0, jump_false: 3, k: SYS_CLONE });
    program.push(op(LOAD_WORD_ABSOLUTE, OFFSET_ARG0_LOW));
    program.push(Instruction {
        code: JUMP_IF_ANY_BIT,
        jump_true: 0,
        jump_false: 1,
        k: CLONE_NAMESPACE_FLAGS,
    });
    program.push(op(RETURN, RET_ERRNO | EPERM));
    program.push(op(RETURN, RET_ALLOW));
    program
}

/// The filter as the kernel reads it: `struct sock_filter` entries in native byte order.
fn program_bytes() -> Vec<u8> {
    let mut bytes = Vec::new();
    for instruction in program() {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jump_true);
        bytes.push(instruction.jump_false);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    bytes
}

/// The filter in an anonymous file for bubblewrap's `--seccomp FD`. The descriptor is
/// inheritable (bubblewrap reads it after `exec`); the caller closes its copy once bubblewrap
/// has started.
pub(crate) fn filter_file() -> Result<OwnedFd, ExecutorError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(ExecutorError::SandboxUnavailable {
            reason: "the sandbox's seccomp filter is written for x86_64 only".into(),
        });
    }
    let fd = memfd_create("aicpw-seccomp", MemfdFlags::empty())
        .map_err(|error| ExecutorError::io("create the seccomp filter file", error.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&program_bytes())
        .map_err(|source| ExecutorError::io("write the seccomp filter", source))?;
    file.rewind().map_err(|source| ExecutorError::io("rewind the seccomp filter", source))?;
    Ok(file.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program_and_it_ends_in_a_return() {
        let program = program();
        for (index, instruction) in program.iter().enumerate() {
            let is_jump = instruction.code & 0x07 == 0x05;
            if is_jump {
                let furthest =
                    index + 1 + usize::from(instruction.jump_true.max(instruction.jump_false));
                assert!(furthest < program.len(), "jump at {index} leaves the program");
            }
        }
        assert_eq!(program.last(), Some(&op(RETURN, RET_ALLOW)));
        assert_eq!(program_bytes().len(), program.len() * 8);
    }

    #[test]
    fn the_denied_table_has_no_duplicates() {
        let mut numbers: Vec<u32> = DENIED.iter().map(|(n, _)| *n).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), DENIED.len());
    }
}
