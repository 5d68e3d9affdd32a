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
