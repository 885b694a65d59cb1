#!/usr/bin/env bash
# The second MRI fold of docs/results.md (brain1 held out), not shipped: trained on brain2, ITK and
# pydeface like mri_head_128, 2500 steps (about 25 min on one CPU thread), when it is missing.
# Used by scripts/loso.sh and scripts/multicoil.sh after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
P=data/cache/pyradiomics/pyradiomics-3.0.1/data
if [ ! -f out/loso/folds/mri_head_fold_brain1.safetensors ]; then
  mkdir -p out/loso/folds
  OMP_NUM_THREADS=1 ./target/release/scorerecon train --config configs/train_mri_head.yaml \
    --out out/loso/folds/mri_head_fold_brain1 --steps 2500 --quiet \
    --data $P/brain2_image.nrrd --data data/cache/itk/KmeansTest_T1UCharRaw.nii.gz \
    --data data/cache/pydeface/pydeface/data/mean_reg2mean.nii.gz --data $P/brain1_image.nrrd
fi
