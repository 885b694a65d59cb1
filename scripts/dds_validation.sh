#!/usr/bin/env bash
# How DDS's defaults (dds_cg_iterations K = 10, dds_eta = 1) were chosen: 25 levels on the
# priors' own validation slabs, not on the test subjects of docs/sampling.md. CT: head-CT slice
# 54 (ct_head_128 held out slices 49..=59), 23 views; MRI: MNI slice 95 (mri_brain_128 held out
# 86..=104), 4x. One CSV row per (K, eta), in the order of the list (docs/sampling.md, "DDS").
set -eu
out=${1:-dds_validation.csv}
export OMP_NUM_THREADS=1
ct=data/cache/cranium/head_ct.nii.gz
mni=data/cache/nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz
for kv in "5 0.85" "10 0.85" "20 0.85" "5 0.5" "5 1.0" "10 0.5" "10 1.0" "20 1.0"; do
    # shellcheck disable=SC2086
    set -- $kv
    scripts/nfe_sweep.sh "$out" ct "$ct" \
        "--views 23 --slice 54 --fit resample --dds-cg-iterations $1 --dds-eta $2" dds:25
    scripts/nfe_sweep.sh "$out" mri "$mni" \
        "--acceleration 4 --slice 95 --fit resample --dds-cg-iterations $1 --dds-eta $2" dds:25
done
