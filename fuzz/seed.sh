#!/usr/bin/env bash
# Seed corpora of the fuzz targets (docs/fuzzing.md): the small real files in data/cache and
# the bad-input corpus of tests/bad_input/corpus.py, one folder per target under fuzz/corpus/.
# Usage: bash fuzz/seed.sh   (from the repository root, after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/scorerecon
[ -x "$bin" ] || cargo build --release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" simulate --phantom shepp-logan --task sparse-view --size 32 --views 4 --full-views 16 --out "$work/ct" >/dev/null
.venv/bin/python -c "
import nibabel as nib, numpy as np
img = nib.Nifti1Image(np.random.default_rng(0).uniform(0, 100, (32, 32, 1)).astype(np.float32), np.eye(4))
img.header['descrip'] = b'[MR] seed'; nib.save(img, '$work/mr.nii.gz')"
"$bin" simulate --input "$work/mr.nii.gz" --task mri --out "$work/mri" >/dev/null
.venv/bin/python tests/bad_input/corpus.py "$work/bad" "$work/ct" "$work/mri" >/dev/null 2>&1
mkdir -p fuzz/corpus/{nifti,dicom,nrrd,measurement,twix} fuzz/measurement
cp "$work/ct/measurement.nii.gz" "$work/ct/measurement_mask.nii.gz" fuzz/measurement/
# The same data and mask as NRRD and raw float32 (the other formats a sidecar may name), and a
# seed sidecar for each ($work/ct_nrrd, $work/ct_raw; copied into the corpus below).
.venv/bin/python - "$work" <<'PY'
import json, os, sys
import nibabel as nib, nrrd, numpy as np
work = sys.argv[1]
meta = json.load(open(f"{work}/ct/measurement.json"))
for ext in ("nrrd", "raw"):
    names = {}
    for key, stem in (("data_file", "measurement"), ("mask_file", "measurement_mask")):
        a = np.asarray(nib.load(f"{work}/ct/{stem}.nii.gz").dataobj, dtype="<f4")
        names[key] = f"{stem}.{ext}"
        if ext == "nrrd":
            nrrd.write(f"fuzz/measurement/{names[key]}", a, index_order="F")
        else:
            a.ravel(order="F").tofile(f"fuzz/measurement/{names[key]}")
    os.makedirs(f"{work}/ct_{ext}")
    json.dump(dict(meta, **names), open(f"{work}/ct_{ext}/measurement.json", "w"))
PY
# Uncompressed NIfTI only: the target writes its input as .nii (a gzip stream would stop the
# mutations at the CRC).
find -L data/cache "$work/bad" -name '*.nii' -size -512k -exec cp {} fuzz/corpus/nifti/ \; 2>/dev/null || true
find -L data/cache "$work/bad" \( -name '*.dcm' -o -path '*pydicom/data/test_files/*' \) -type f -size -512k \
    -exec cp {} fuzz/corpus/dicom/ \; 2>/dev/null || true
find -L data/cache "$work/bad" -name '*.nrrd' -size -512k -exec cp {} fuzz/corpus/nrrd/ \; 2>/dev/null || true
find "$work" -name 'measurement.json' | while read -r f; do
    cp "$f" "fuzz/corpus/measurement/$(basename "$(dirname "$f")").json"
done
# Twix: small VD and VB files cut from twixtools' gre.dat, their truncations, and gre.dat itself
# (longer than the run's max_len: libFuzzer keeps its first bytes, the real protocol header).
.venv/bin/python fuzz/twix_seeds.py data/cache/twix/gre.dat fuzz/corpus/twix
cp data/cache/twix/gre.dat fuzz/corpus/twix/
for t in nifti dicom nrrd measurement twix; do
    echo "$t: $(ls fuzz/corpus/$t | wc -l) seed files"
done
