#!/usr/bin/env bash
# Quality against NFE for the shipped default priors on subjects they never trained on
# (docs/sampling.md, "Quality against NFE: default priors, held-out subjects"): three slices
# each of lung2 (chest CT, held out whole from ct_body_128; 23 of 180 views) and brain2 (T1
# head with skull, held out whole from mri_head_128; 4x equispaced, 8% centre), both put on
# the prior's grid with --fit resample. The slices are those of docs/results.md's leave-one-
# subject-out runs (scripts/loso_{ct,mri}.yaml), chosen there before any score-based result
# was seen. One torch thread per run. Then:
#   cargo run --release --example nfe_table -- OUT.csv docs/nfe_heldout
# DDS runs with the current defaults (since 2026-12-02 the warm start and the task's re-noise);
# docs/nfe_heldout.csv labels the 2026-12-01 rows of the earlier cold-start DDS `dds-cold`.
set -eu
out=${1:-nfe_heldout.csv}
export OMP_NUM_THREADS=1
d=data/cache/pyradiomics/pyradiomics-3.0.1/data
ct=(ct "$d/lung2_image.nrrd" "--views 23 --fit resample --slice 26,30,34")
mri=(mri "$d/brain2_image.nrrd" "--acceleration 4 --center-fraction 0.08 --fit resample --slice 10,13,16")
sweep="dds:5 dds:10 dds:50 dds:100 dds:200 pc:50 pc:100 pc:500 ode:200 ode:400"
for t in ct mri; do
    declare -n a=$t
    # The pair, side by side, twice: DDS 25 levels (25 NFE) and the CPU preset PC 200
    # levels (400 NFE).
    scripts/nfe_sweep.sh "$out" "${a[@]}" dds:25 pc:200 dds:25 pc:200
    # shellcheck disable=SC2086
    scripts/nfe_sweep.sh "$out" "${a[@]}" $sweep
    # The paper's schedule (1000 levels, 2000 NFE).
    scripts/nfe_sweep.sh "$out" "${a[@]}" pc:1000
done
# The classical baselines of the same measurements (beside a DDS run: every job samples).
bin=${SCORERECON:-target/release/scorerecon}
# shellcheck disable=SC2086
"$bin" ct --input "$d/lung2_image.nrrd" --views 23 --fit resample --slice 26,30,34 --sampler dds \
    --steps 5 --baselines fbp,fista-tv --device cpu --quiet --out "$out.ct_baselines" --force
"$bin" mri --input "$d/brain2_image.nrrd" --acceleration 4 --center-fraction 0.08 --fit resample \
    --slice 10,13,16 --sampler dds --steps 5 --baselines zero-filled,tv --device cpu --quiet \
    --out "$out.mri_baselines" --force
