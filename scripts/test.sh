#!/usr/bin/env bash
# Runs every test: installs what the tests need (bubblewrap, python3), then the whole workspace,
# then the GPU solver's tests that run without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
# The GPU challenge solver's tests that need no GPU (its GPU test is ignored without one).
cargo test --locked -p aicpw-provider --features cuda --lib cuda

# --- The API's contract (node's /openapi.json): schemathesis against a live node -------------
bash scripts/api-contract.sh

# --- Validators under BFT consensus (crates/consensus, the CLI's `consensus` feature) ---------
# Ten seeds with every fault, each checked for agreement, invariants and catch-up; seed 0 twice.
cargo run --locked -p aicpw-cli --features consensus -- sim --consensus --seeds 10 --faults all --json > /dev/null
# Four validator processes on loopback: one killed, the others finalize; restarted, it catches up.
cargo test --locked -p aicpw-cli --features consensus --test devnet
