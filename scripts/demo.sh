#!/usr/bin/env bash
# Sets up this machine and runs the main job: a local network doing a real AI task end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p aicpw-cli
exec target/release/aicpw demo "$@"
