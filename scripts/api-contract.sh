#!/usr/bin/env bash
# Runs schemathesis (installed by scripts/setup.sh) against a live dev node's /openapi.json:
# every documented operation, generated valid and invalid inputs, and fails on any server error
# or any response that contradicts the document (status, content type, schema, headers).
# The event stream is left out (it never ends). Usage: bash scripts/api-contract.sh
set -euo pipefail
cd "$(dirname "$0")/.."
schemathesis="${AICPW_SCHEMATHESIS:-${HOME}/.cache/aicpw-schemathesis/bin/schemathesis}"
cargo build --locked -q -p aicpw-cli
target="$(realpath "${CARGO_TARGET_DIR:-target}")"
data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
"${target}/debug/aicpw" node start --dev --data-dir "${data}" --listen "127.0.0.1:${port}" \
  >"${data}/node.log" 2>&1 &
node_pid=$!
trap 'kill "${node_pid}" 2>/dev/null || true; wait "${node_pid}" 2>/dev/null || true; rm -rf "${data}"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${port}/v1/status" >/dev/null 2>&1 && break
  sleep 0.1
done
# From the temporary folder, so the report folder schemathesis writes goes with it.
cd "${data}"
"${schemathesis}" run "http://127.0.0.1:${port}/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --exclude-path /v1/events \
  --max-examples 25 --seed 13 --request-timeout 10 \
  --phases examples,coverage,fuzzing
