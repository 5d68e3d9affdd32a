#!/usr/bin/env bash
# Installs the host tools the AICPW provider's sandbox executor needs (Debian/Ubuntu).
#
# Idempotent and non-interactive: when everything is already present it only checks and exits
# (no `apt-get update`). Run as root, or as a user with sudo: `bash scripts/setup.sh`.
#
#   bwrap          bubblewrap: namespaces and mounts of the sandbox
#   prlimit        util-linux: per-process resource limits inside the sandbox
#   setpriv        util-linux: drops root to the unprivileged sandbox uid when the agent runs as root
#   taskset        util-linux: pins a task to the CPU cores it asked for
#   env            coreutils:  gives the task exactly the environment the executor chose
#   mkfs.ext4      e2fsprogs:  formats each run's own disk image (the disk limit, enforced by the kernel)
#   mount          mount:      loop-mounts that image for the run
#   python3        the interpreter of the example tasks (examples/tasks)
#   slirp4netns    egress-only network of a task with `network: full` (`provider start --allow-network`)
#   nft            nftables: the rules that keep such a task off loopback, LAN and metadata addresses
#   ip             iproute2: the task's own network namespace and the host routes its rules block
#   nsenter        util-linux: starts the sandbox in that namespace
#   unshare        util-linux: a private mount namespace for slirp4netns's own sandbox
#   nvidia-smi     optional, never installed here: GPU detection uses it when the driver is present
set -euo pipefail

# command -> Debian package that provides it.
required=(
  "bwrap:bubblewrap"
  "prlimit:util-linux"
  "setpriv:util-linux"
  "taskset:util-linux"
  "env:coreutils"
  "mkfs.ext4:e2fsprogs"
  "mount:mount"
  "python3:python3"
  "slirp4netns:slirp4netns"
  "nft:nftables"
  "ip:iproute2"
  "nsenter:util-linux"
  "unshare:util-linux"
)

missing_packages=()
for entry in "${required[@]}"; do
  command_name="${entry%%:*}"
  package="${entry##*:}"
  # The sandbox resolves tools in the host's /usr, so look there rather than in $PATH
  # (a pyenv or virtualenv python3 on $PATH is invisible inside the sandbox).
  if [[ ! -x "/usr/bin/${command_name}" && ! -x "/bin/${command_name}" &&
    ! -x "/usr/sbin/${command_name}" && ! -x "/sbin/${command_name}" ]]; then
    if [[ " ${missing_packages[*]-} " != *" ${package} "* ]]; then
      missing_packages+=("${package}")
    fi
  fi
done

if ((${#missing_packages[@]} > 0)); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: missing packages (${missing_packages[*]}) and no apt-get here;" \
      "install them with your package manager" >&2
    exit 1
  fi
  sudo_prefix=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup.sh: need root (or sudo) to install: ${missing_packages[*]}" >&2
      exit 1
    fi
    sudo_prefix=(sudo)
  fi
  echo "setup.sh: installing ${missing_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_prefix[@]}" apt-get update -qq
  "${sudo_prefix[@]}" apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"
fi

# A sandbox that cannot start is worse than a missing tool: check that namespaces work here.
# Root runs bwrap directly; other users need unprivileged user namespaces.
namespace_flags=(--unshare-pid --unshare-ipc --unshare-uts --unshare-net)
if [[ "$(id -u)" -ne 0 ]]; then
  namespace_flags+=(--unshare-user)
fi
# The host's top-level entries, reproduced as the executor does (merged /usr or not).
root_flags=()
for entry in /bin /sbin /lib /lib32 /lib64 /libx32; do
  if [[ -L "${entry}" ]]; then
    root_flags+=(--symlink "$(readlink "${entry}")" "${entry}")
  elif [[ -d "${entry}" ]]; then
    root_flags+=(--ro-bind "${entry}" "${entry}")
  fi
done
probe_errors="$(mktemp)"
trap 'rm -f "${probe_errors}"' EXIT
if ! bwrap --ro-bind /usr /usr "${root_flags[@]}" --proc /proc --dev /dev \
  "${namespace_flags[@]}" --die-with-parent -- /usr/bin/env true 2>"${probe_errors}"; then
  echo "setup.sh: bubblewrap is installed but cannot create namespaces:" >&2
  cat "${probe_errors}" >&2
  echo "hint: unprivileged user namespaces may be disabled" \
    "(sysctl kernel.unprivileged_userns_clone=1, or an AppArmor userns restriction)," \
    "or this is a container without CAP_SYS_ADMIN / with a seccomp filter that blocks unshare" >&2
  exit 1
fi
# A provider agent runs other people's tasks only under kernel-enforced limits: as root, with
# cgroups (v2 with memory, pids and cpu, or the v1 controllers) and loop devices for each run's disk.
v2_controllers="$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || true)"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "setup.sh: note: the provider agent must run as root (cgroups and a loop-mounted disk per run)" >&2
elif [[ ! -e /dev/loop-control ]]; then
  echo "setup.sh: no /dev/loop-control: load the loop module (modprobe loop)" >&2
  exit 1
elif ! { [[ "${v2_controllers}" == *memory* && "${v2_controllers}" == *pids* && "${v2_controllers}" == *cpu* ]] ||
  [[ -e /sys/fs/cgroup/memory/memory.limit_in_bytes && -e /sys/fs/cgroup/pids/cgroup.procs &&
    -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; }; then
  echo "setup.sh: no cgroup memory, pids and cpu controllers under /sys/fs/cgroup:" \
    "enable cgroup v2 (systemd.unified_cgroup_hierarchy=1) or mount the v1 controllers" >&2
  exit 1
fi
# Network tasks (`provider start --allow-network`, root only): a namespace with nftables rules.
if [[ "$(id -u)" -eq 0 ]]; then
  probe_netns="aicpw-setup-probe-$$"
  probe_rules='table inet aicpw_probe { chain output { type filter hook output priority 0; ip daddr 169.254.0.0/16 reject; }; }'
  if ip netns add "${probe_netns}" 2>"${probe_errors}" &&
    nsenter --net="/run/netns/${probe_netns}" -- nft "${probe_rules}" 2>>"${probe_errors}"; then
    echo "setup.sh: network namespaces and nftables work (network tasks can be offered)"
  else
    echo "setup.sh: warning: tasks with network access cannot be confined here, so" \
      "'provider start --allow-network' will refuse to start:" >&2
    cat "${probe_errors}" >&2
  fi
  ip netns delete "${probe_netns}" 2>/dev/null || true
fi
echo "setup.sh: sandbox tools present and working"

# --- Metrics and web checks (node's /metrics, web DApp) ---------------------------------------
#   promtool       prometheus: `promtool check metrics` judges the node's /metrics in its tests
#   chromium       the browser the web DApp's test drives (crates/node/tests/browser.rs)
#   node, npm      nodejs, npm: run that test's driver, playwright-core (pinned in its lock file)
#   curl           curl: scripts/api-contract.sh waits for its node with it
#   schemathesis   pip, in a virtual environment under ~/.cache: scripts/api-contract.sh
web_missing=()
command -v promtool >/dev/null 2>&1 || web_missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || web_missing+=(chromium)
command -v node >/dev/null 2>&1 || web_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || web_missing+=(npm)
command -v curl >/dev/null 2>&1 || web_missing+=(curl)
if ((${#web_missing[@]} > 0)); then
  if [[ "$(id -u)" -ne 0 ]] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup.sh: need root (or sudo) to install: ${web_missing[*]}" >&2
    exit 1
  fi
  web_sudo=()
  [[ "$(id -u)" -ne 0 ]] && web_sudo=(sudo)
  echo "setup.sh: installing ${web_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${web_sudo[@]}" apt-get update -qq
  "${web_sudo[@]}" apt-get install -y -qq --no-install-recommends "${web_missing[@]}"
fi
browser_harness="$(dirname "$0")/../crates/node/tests/browser"
if [[ ! -d "${browser_harness}/node_modules/playwright-core" ]]; then
  echo "setup.sh: installing playwright-core for the browser test (npm ci)"
  npm ci --prefix "${browser_harness}" --no-audit --no-fund --ignore-scripts
fi
schemathesis_venv="${HOME}/.cache/aicpw-schemathesis"
if [[ ! -x "${schemathesis_venv}/bin/schemathesis" ]]; then
  echo "setup.sh: installing schemathesis into ${schemathesis_venv}"
  python3 -m venv "${schemathesis_venv}"
  "${schemathesis_venv}/bin/pip" install -q "schemathesis==4.32.5"
fi
echo "setup.sh: web and metrics check tools present"

# --- Content store: an independent IPFS implementation to check the store's CIDs against ------
# js-ipfs' UnixFS importer (npm ipfs-unixfs-importer, pinned in tools/ipfs-cid/package-lock.json;
# node and npm come with the web checks above), run by crates/store/tests/ipfs_js.rs and
# `aicpw bench store --js-ipfs-tool`.
ipfs_cid_tool="$(cd "$(dirname "$0")/.." && pwd)/tools/ipfs-cid"
if [[ ! -d "${ipfs_cid_tool}/node_modules/ipfs-unixfs-importer" ]]; then
  echo "setup.sh: installing ipfs-unixfs-importer into tools/ipfs-cid (npm ci)"
  npm ci --prefix "${ipfs_cid_tool}" --no-audit --no-fund --ignore-scripts --loglevel=error
fi
echo "setup.sh: js-ipfs importer present ($(node "${ipfs_cid_tool}/cid.mjs" /dev/null 1))"

# --- Container tasks (runtime: container): a Docker Engine and the busybox test image ---------
# The container executor talks to the engine's API (/var/run/docker.sock, or DOCKER_HOST). Here
# the engine is Debian's docker.io, started by hand when no init system runs it (cgroup v1 or
# v2, overlay2); the tests build their image from busybox-static (scripts/container-image.sh),
# as no registry is reachable. Idempotent: a running engine is only checked.
if [[ "$(id -u)" -eq 0 ]]; then
  container_packages=()
  command -v dockerd >/dev/null 2>&1 || container_packages+=(docker.io)
  [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || container_packages+=(busybox-static)
  if ((${#container_packages[@]} > 0)); then
    echo "setup.sh: installing ${container_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${container_packages[@]}"
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "setup.sh: starting dockerd (log: /var/log/aicpw-dockerd.log)"
    nohup dockerd >>/var/log/aicpw-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "setup.sh: the Docker Engine does not answer; container tasks cannot run here:" >&2
    tail -n 20 /var/log/aicpw-dockerd.log >&2 || true
    exit 1
  fi
  echo "setup.sh: Docker Engine answers ($(docker info --format '{{.ServerVersion}}, cgroup v{{.CgroupVersion}}, {{.Driver}}'))"
else
  echo "setup.sh: note: container tasks need a Docker Engine; run this script as root to install and start one" >&2
fi
