#!/usr/bin/env bash
# The runs behind docs/sampling.md ("Too few steps", "Quality against NFE") and the DDS-vs-PC
# row of docs/benchmarks.md, in this order, on the held-out subjects (the shipped priors never
# saw them): pydicom's CT_small.dcm (CT, 128x128, 23 of 180 views) and MR_small.dcm (T1 MR,
# 64x64 padded to 128x128, 4x equispaced). One torch thread per run (on a shared 2-core
# machine, spinning OpenMP workers otherwise dominate). Then:
#   cargo run --release --example nfe_table -- OUT.csv docs/nfe_sweep
set -eu
out=${1:-nfe_sweep.csv}
export OMP_NUM_THREADS=1
d=data/cache/pydicom/pydicom/data/test_files
ct=(ct "$d/CT_small.dcm" "--views 23")
mri=(mri "$d/MR_small.dcm" "--acceleration 4 --fit pad")
# The 35/40/45, 60/70/80 and dds:4 probes were added after the first ones had been seen
# (they ran after the rest, in a second pass of the same binary).
probes="pc:10 pc:15 pc:20 pc:25 pc:30 pc:35 pc:40 pc:45 ode:5 ode:10 ode:20 ode:60 ode:70 ode:80 dds:2 dds:3 dds:4 dds:5"
sweep="pc:5 pc:10 pc:25 pc:50 pc:100 ode:10 ode:20 ode:50 ode:100 ode:200 ode:400 dds:10 dds:20 dds:50 dds:100 dds:200 dds:400"
for t in ct mri; do
    declare -n a=$t
    # shellcheck disable=SC2086
    scripts/nfe_sweep.sh "$out" "${a[@]}" $probes
    # The pair, side by side: DDS 25 levels (25 NFE) and the CPU preset PC 200 (400 NFE).
    scripts/nfe_sweep.sh "$out" "${a[@]}" dds:25 pc:200 dds:25
    # shellcheck disable=SC2086
    scripts/nfe_sweep.sh "$out" "${a[@]}" $sweep
done
# The paper's setting (2000 NFE), CT only.
scripts/nfe_sweep.sh "$out" "${ct[@]}" pc:1000
# The classical baselines of the same measurements (beside a DDS run: every job samples).
bin=${SCORERECON:-target/release/scorerecon}
"$bin" ct --input "$d/CT_small.dcm" --views 23 --sampler dds --steps 5 --baselines fbp,fista-tv \
    --device cpu --quiet --out "$out.ct_baselines" --force
"$bin" mri --input "$d/MR_small.dcm" --acceleration 4 --fit pad --sampler dds --steps 5 \
    --baselines zero-filled,tv --device cpu --quiet --out "$out.mri_baselines" --force
