#!/usr/bin/env bash
# DDS's K (dds_cg_iterations) and eta for the default priors, tuned on subjects that are not
# the test subjects of docs/sampling.md's held-out sweep (docs/sampling.md, "Quality against
# NFE: the default priors on held-out subjects"): MRI on brain1 with the fold-B prior of
# docs/results.md (trained without brain1; scripts/loso.sh trains it), CT on pydicom's
# CT_small.dcm with ct_body_128. 25 levels; then PC 200 levels and the ODE 200 levels on the
# same slices. The last CSV column labels the (K, eta) pair.
set -eu
out=${1:-dds_tuning.csv}
export OMP_NUM_THREADS=1
d=data/cache/pyradiomics/pyradiomics-3.0.1/data
p=data/cache/pydicom/pydicom/data/test_files
fold=out/loso/folds/mri_head_fold_brain1.safetensors
mri=(mri "$d/brain1_image.nrrd" "--acceleration 4 --center-fraction 0.08 --fit resample --slice 10,13,16 --model $fold")
ct=(ct "$p/CT_small.dcm" "--views 23 --fit resample")
for k in 5 10; do
    for e in 0.5 0.85 1.0; do
        for t in mri ct; do
            declare -n a=$t
            scripts/nfe_sweep.sh "$out" "${a[0]}" "${a[1]}" "${a[2]} --dds-cg-iterations $k --dds-eta $e" dds:25
            sed -i "\$ s/\$/,k$k-eta$e/" "$out"
        done
    done
done
scripts/nfe_sweep.sh "$out" "${mri[@]}" pc:200 ode:200
scripts/nfe_sweep.sh "$out" "${ct[@]}" pc:200 ode:200
