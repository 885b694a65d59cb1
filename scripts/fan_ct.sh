#!/usr/bin/env bash
# Reproduce the fan-beam CT table of docs/results.md (scripts/fan_ct.yaml): about 25 minutes on
# a 2-core machine, CPU only; resumable (`scorerecon batch`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
./target/release/scorerecon batch scripts/fan_ct.yaml "$@"
./target/release/scorerecon batch scripts/fan_mar.yaml "$@"
.venv/bin/python scripts/results_table.py out/fan/ct out/fan/mar | tee out/fan/tables.md
