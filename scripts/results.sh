#!/usr/bin/env bash
# Reproduce docs/results.md: build, run the held-out evaluation batch (scripts/results.yaml) and
# print its tables. CPU only; about 40 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
./target/release/scorerecon batch scripts/results.yaml "$@"
.venv/bin/python scripts/results_table.py out/results | tee out/results/tables.md
