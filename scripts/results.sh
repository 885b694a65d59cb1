#!/usr/bin/env bash
# Reproduce docs/results.md: build, run the held-out evaluation batches (scripts/results_*.yaml)
# and print their tables. CPU only; about an hour on a 2-core machine (the two batches can run
# side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
./target/release/scorerecon batch scripts/results_ct.yaml "$@"
./target/release/scorerecon batch scripts/results_mri.yaml "$@"
.venv/bin/python scripts/results_table.py out/results/ct out/results/mri | tee out/results/tables.md
