#!/usr/bin/env bash
# Wheels that the lent GPU machines lack (their image has PyTorch, transformers, numpy,
# pyarrow, pyyaml, tqdm, OpenCV, attrs...; /work/.library/device/KINDS.md lists it) for
# their Python 3.12, into .whl/ (git-ignored), for benchmarks/gpu_session.sh.  Needs the
# package registries, so run it here, not there.  Not carried: imageio-ffmpeg (68 MB; the
# prior-generation benchmark writes its videos with OpenCV there), spaCy, Snakemake, PuLP
# (no GPU figure needs them).
set -eu
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 -d .whl \
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 decord==0.6.0
du -sh .whl
