#!/usr/bin/env bash
# CI's short fuzz run (issue 16, docs/fuzzing.md): every reader's target from the seeds of
# fuzz/seed.sh, with a fixed seed and a fixed number of inputs (about a minute each here; at most
# FUZZ_SECONDS, default 180), so a run is the same on every machine: a finding fails CI because
# of the change, not by luck. A crash, a hang over 10 s or an allocation over 2 GiB fails the run
# and leaves the input in fuzz/artifacts/<target>/.
# Usage: bash fuzz/ci.sh   (from the repository root, after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-180}

# cargo-fuzz drives libFuzzer through -Z flags; the stable compiler takes them with
# RUSTC_BOOTSTRAP=1 (no nightly toolchain needed).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export LIBTORCH=$PWD/.venv/libtorch LIBTORCH_CXX11_ABI=1 RUSTC_BOOTSTRAP=1
export LD_LIBRARY_PATH=$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bash fuzz/seed.sh
cargo fuzz build -s none

declare -A max_len=([nifti]=65536 [dicom]=262144 [nrrd]=65536 [measurement]=16384 [twix]=65536)
declare -A runs=([nifti]=1500000 [dicom]=15000 [nrrd]=30000 [measurement]=1000000 [twix]=300000)
# FUZZ_TARGETS picks some of them (e.g. FUZZ_TARGETS=dicom).
for t in ${FUZZ_TARGETS:-nifti dicom nrrd measurement twix}; do
    echo "fuzz: $t, ${runs[$t]} inputs (at most ${seconds} s)"
    mkdir -p "fuzz/artifacts/$t"
    # The seed corpus is copied so the run adds nothing to fuzz/corpus. DICOM starts from the
    # fixed real files only (data/cache and pydicom's test files, not the generated bad-input
    # corpus, whose UIDs are random), so its run is the same on every machine.
    work=$(mktemp -d)
    if [ "$t" = dicom ]; then
        find -L data/cache .venv/lib/python3*/site-packages/pydicom/data/test_files \
            -name '*.dcm' -type f -size -512k 2>/dev/null | LC_ALL=C sort | while read -r f; do
            cp "$f" "$work/$(printf '%s' "$f" | md5sum | cut -c1-16).dcm"
        done
    else
        cp -r "fuzz/corpus/$t/." "$work/"
    fi
    status=0
    SCORERECON_FUZZ_MEASUREMENT=fuzz/measurement \
        "fuzz/target/x86_64-unknown-linux-gnu/release/$t" "$work" \
        -seed=1 -runs="${runs[$t]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]}" \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$work.log" 2>&1 || status=$?
    # The final stats (executions, peak RSS, corpus) and any report, without the progress lines.
    grep -E '^(stat::|Done |SUMMARY|==[0-9]+== ERROR)|deadly signal|timeout|out-of-memory' "$work.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$work.log" >&2
    fi
    rm -f "$work.log"
    rm -rf "$work"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $t found an input that fails (exit $status): fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: no finding"
