#!/usr/bin/env bash
# Reproduce docs/results.md, "Multi-coil MRI": 8 simulated coils on two held-out T1 head scans
# (scripts/multicoil_mri.yaml), zero-filled RSS, SENSE, TV and the score-based reconstruction.
# CPU only; about 15 minutes on a 2-core machine (plus 25 for the second fold's prior when
# missing: scripts/loso.sh trains it). The jobs are resumable (`scorerecon batch`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
P=data/cache/pyradiomics/pyradiomics-3.0.1/data
if [ ! -f out/loso/folds/mri_head_fold_brain1.safetensors ]; then
  mkdir -p out/loso/folds
  OMP_NUM_THREADS=1 ./target/release/scorerecon train --config configs/train_mri_head.yaml \
    --out out/loso/folds/mri_head_fold_brain1 --steps 2500 --quiet \
    --data $P/brain2_image.nrrd --data data/cache/itk/KmeansTest_T1UCharRaw.nii.gz \
    --data data/cache/pydeface/pydeface/data/mean_reg2mean.nii.gz --data $P/brain1_image.nrrd
fi
./target/release/scorerecon batch scripts/multicoil_mri.yaml "$@"
.venv/bin/python scripts/results_table.py out/multicoil | tee out/multicoil/tables.md
