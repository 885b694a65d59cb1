#!/usr/bin/env bash
# Quality against score evaluations (NFE) through the reconstruction CLI, one run per
# (sampler, steps), appended to a CSV as each finishes (docs/sampling.md, "Quality against NFE").
#
#   scripts/nfe_sweep.sh OUT.csv TASK INPUT "EXTRA FLAGS" SAMPLER:STEPS ...
#
# e.g. scripts/nfe_sweep.sh sweep.csv ct data/cache/pydicom/pydicom/data/test_files/CT_small.dcm \
#        "--views 23" dds:25 pc:200
#
# Columns: task, input, sampler, steps, nfe, psnr, ssim, residual, seconds (the sampler's wall
# time from metrics.json), status (ok, or the first words of the error: a refused or diverged
# run). Noise-free measurement, seed 0, no baselines, the task's shipped prior and paper values.
# SCORERECON (default target/release/scorerecon) picks the binary; runs are sequential, in the
# order given, so pairs listed next to each other are measured side by side.
set -u
out=$1 task=$2 input=$3 extra=$4
shift 4
bin=${SCORERECON:-target/release/scorerecon}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -s "$out" ] || echo "task,input,sampler,steps,nfe,psnr,ssim,residual,seconds,status,load" >"$out"
for run in "$@"; do
    sampler=${run%%:*} steps=${run##*:}
    case $sampler in
    pc) nfe=$((2 * steps)) ;;        # N levels x 1 corrector + N - 1 predictors + final denoise
    ode) nfe=$steps ;;               # N - 1 Euler steps + final denoise
    dds) nfe=$steps ;;               # one Tweedie denoise per level, the last one is the output
    *) nfe=NA ;;
    esac
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086
    if "$bin" "$task" --input "$input" $extra --sampler "$sampler" --steps "$steps" \
        --baselines none --seed 0 --device cpu --quiet --out "$tmp/run" --force \
        >"$tmp/stdout" 2>"$tmp/stderr"; then
        python3 - "$tmp/run/metrics.json" "$task,$input,$sampler,$steps,$nfe" "$load" >>"$out" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["methods"]["score"]
print(f'{sys.argv[2]},{m["psnr"]:.3f},{m["ssim"]:.4f},{m["residual"]:.2e},{m["seconds"]:.1f},ok,{sys.argv[3]}')
EOF
    else
        status=$(head -c 120 "$tmp/stderr" | tr ',\n' ';;')
        echo "$task,$input,$sampler,$steps,$nfe,,,,,$status,$load" >>"$out"
    fi
    rm -rf "$tmp/run"
done
