#!/usr/bin/env bash
# Reproduce the leave-one-subject-out tables of docs/results.md: each shipped prior, and the
# cross-subject priors that replace them, on a subject none of them trained on (pyradiomics'
# lung2 chest CT and brain2 T1 head), against the classical baselines on the same grid.
# CPU only; about 15 minutes on a 2-core machine, plus 25 for the second MRI fold's prior. The jobs are resumable (`scorerecon batch`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
bash scripts/mri_fold_brain1.sh
./target/release/scorerecon batch scripts/loso_ct.yaml "$@"
./target/release/scorerecon batch scripts/loso_mri.yaml "$@"
.venv/bin/python scripts/results_table.py out/loso/ct out/loso/mri | tee out/loso/tables.md
