#!/usr/bin/env bash
# DDS with the warm start and the per-task re-noise (docs/sampling.md, "Warm start and fresh
# noise") on the held-out subjects of scripts/nfe_sweep_heldout.sh (lung2 slices 26, 30, 34,
# 23 of 180 views, ct_body_128; brain2 slices 10, 13, 16, 4x, mri_head_128; neither prior
# trained on them). First the pair side by side, twice: DDS 25 levels (25 NFE) and the
# PC preset with 200 levels (400 NFE); then DDS with the earlier defaults (cold start from
# sigma_max, DDIM re-noise) for before/after, and DDS over 5-100 levels. The last CSV column
# labels the row.
set -eu
out=${1:-dds_warm_heldout.csv}
export OMP_NUM_THREADS=1
d=data/cache/pyradiomics/pyradiomics-3.0.1/data
ct=(ct "$d/lung2_image.nrrd" "--views 23 --fit resample --slice 26,30,34")
mri=(mri "$d/brain2_image.nrrd" "--acceleration 4 --center-fraction 0.08 --fit resample --slice 10,13,16")
label() { # label the last N rows
    local n=$1 tag=$2 rows
    rows=$(wc -l <"$out")
    for i in $(seq "$n"); do sed -i "$((rows - n + i)) s/\$/,$tag/" "$out"; done
}
for t in ct mri; do
    declare -n a=$t
    scripts/nfe_sweep.sh "$out" "${a[@]}" dds:25 pc:200 dds:25 pc:200
    label 4 defaults
    scripts/nfe_sweep.sh "$out" "${a[0]}" "${a[1]}" "${a[2]} --dds-start-sigma 0 --dds-fresh 0" dds:25
    label 1 cold-ddim
    scripts/nfe_sweep.sh "$out" "${a[@]}" dds:5 dds:10 dds:50 dds:100
    label 4 defaults
done
# The pair again on all slices of docs/results.md's leave-one-subject-out runs (lung2 26..36 even,
# brain2 10..16), added after the three-slice pair was seen, to check its margin.
scripts/nfe_sweep.sh "$out" ct "$d/lung2_image.nrrd" "--views 23 --fit resample --slice 26,28,30,32,34,36" dds:25 pc:200
label 2 all-slices
scripts/nfe_sweep.sh "$out" mri "$d/brain2_image.nrrd" \
    "--acceleration 4 --center-fraction 0.08 --fit resample --slice 10,11,12,13,14,15,16" dds:25 pc:200
label 2 all-slices
