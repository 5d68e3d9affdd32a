#!/usr/bin/env bash
# Runs every test: installs what the tests need (bubblewrap, python3), then the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
