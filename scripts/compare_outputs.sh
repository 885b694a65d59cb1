#!/usr/bin/env bash
# Same seed, same outputs: run a fixed set of commands with one binary into OUTDIR, to compare two
# builds with scripts/compare_outputs.py (the before/after check of refactors; docs/architecture.md).
# usage (from the repository root): scripts/compare_outputs.sh BINARY OUTDIR
# (The check of 2026-12-01 ran it with 20 steps, before PC had its minimum of 40.)
set -u
B=$1; O=$2
[ -e "$O" ] && { echo "$O exists: give a new folder" >&2; exit 1; }
mkdir -p "$O"
CT=data/cache/cranium/head_ct.nii.gz
MNI=data/cache/nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz
run() { echo "== $*" >> $O/log.txt; "$@" >> $O/log.txt 2>&1; echo "rc=$?" >> $O/log.txt; }
run $B ct --config configs/ct_cpu.yaml --sampler pc --input $CT --slice 50,52 --model ct_head_128 --fit resample --steps 40 --seed 3 --samples 2 --views 10,23 --quiet --out $O/ct
run $B mri --config configs/mri_cpu.yaml --input $MNI --slice 95 --model mri_brain_128 --fit resample --steps 40 --seed 1 --quiet --out $O/mri
run $B mar --config configs/mar_cpu.yaml --input $CT --slice 52 --model ct_head_128 --fit resample --steps 40 --insert-metal --quiet --out $O/mar
run $B simulate --input $CT --slice 52 --task sparse-view --views 23 --photons 1e5 --seed 2 --out $O/sim_ct
run $B simulate --input $MNI --slice 95 --task mri --acceleration 4 --downsample 2 --pad-to 128 --seed 2 --snr-db 30 --out $O/sim_mri
run $B simulate --phantom metal --size 128 --task mar --out $O/sim_mar
run $B mri --config configs/mri_cpu.yaml --input $O/sim_mri/measurement.json --model mri_brain_128 --steps 40 --quiet --out $O/mri_file
cat > $O/manifest.yaml <<EOM
defaults: {device: cpu, fit: resample, quiet: true, steps: 40, model: ct_head_128}
jobs:
  - {name: a, task: ct, input: $PWD/$CT, slices: [40], views: [23]}
  - {name: b, task: mar, input: $PWD/$CT, slices: [45], insert_metal: true, baselines: [fbp, li]}
EOM
run $B batch $O/manifest.yaml --out $O/batch --quiet
run $B demo --out $O/demo --steps 40 --quiet
echo finished >> $O/log.txt
