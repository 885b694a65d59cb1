#!/usr/bin/env bash
# Reproduce docs/results.md, "Multi-coil MRI": 8 simulated coils on two held-out T1 head scans
# (scripts/multicoil_mri.yaml), zero-filled RSS, SENSE, TV and the score-based reconstruction.
# CPU only; about 15 minutes on a 2-core machine (plus 25 for the second fold's prior when
# missing: scripts/loso.sh trains it). The jobs are resumable (`scorerecon batch`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
bash scripts/mri_fold_brain1.sh
./target/release/scorerecon batch scripts/multicoil_mri.yaml "$@"
.venv/bin/python scripts/results_table.py out/multicoil | tee out/multicoil/tables.md
