#!/usr/bin/env bash
# Train (or continue) the demo zoo on one GPU, on a machine that has Python 3.12 with torch,
# torchvision, numpy, Pillow, opencv-python-headless, PyYAML, tqdm and safetensors, but not
# this project's other dependencies and no internet (e.g. a lent H200).
#
#   bash scripts/train_zoo_gpu.sh prepare   # here, with internet to the package index: wheels and photos
#   bash scripts/train_zoo_gpu.sh run       # there: data, training, zoo export (about 10 minutes)
#
# `prepare` writes .gpu/wheels (compressai, pycocotools, pytorch-msssim for CPython 3.12, 1 MB) and
# .gpu/photos (the photographs the data generator cuts from, for the packages that machine
# lacks: ultralytics' bus.jpg and zidane.jpg, and the others, so the data is the same); carry
# .gpu with the checkout. `run` installs the wheels into /tmp/site, generates the demo's
# shapes data with its masks, trains every codec of the demo recipe (notebooks/params/demo.yaml,
# PROCESSES codecs side by side on the GPU), exports them into zoo/demo and, when OUT is set,
# packs zoo/demo into $OUT/zoo-demo.tar.part-* (15 MB pieces) to bring back.
# Settings: STEPS (per codec, default the recipe's), ONLY (codec names or shell patterns, space
# separated: train just those, e.g. ONLY='mbt2018-mean-mse-*'), DECAY_AT (fractions of STEPS where the
# lr drops 10x, space separated, default the recipe's: STEPS=45000 DECAY_AT=0.5 continues 40,000-step
# codecs at 1e-4), CHUNK (steps per round, default STEPS),
# PROCESSES (default 6), VAL_EVERY (default 5000: validation codes on the CPU), BATCH (images per
# step, default the recipe's), BUDGET (seconds: train every codec this long in one round, each
# fixing its steps from its measured speed), FRESH (non-empty: start every codec from scratch into
# .gpu/zoo instead of continuing zoo/demo), WALL (seconds the whole run may take: training is
# stopped in time to export what the checkpoints hold). The training images are cached in memory
# (about 300 MB per process). RECIPE: a file of settings that replace the profile's recipe (the next zoo's:
# RECIPE=zoo/demo/next-recipe.yaml grows every codec into the larger encoder from the zoo's, then fine-tunes).
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu

prepare() {
    mkdir -p "$GPU_DIR/wheels"
    grep -qxF "/$GPU_DIR/" .git/info/exclude 2>/dev/null || echo "/$GPU_DIR/" >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$GPU_DIR/wheels" compressai==1.2.8 pycocotools==2.0.11 pytorch-msssim==1.0.0
    python3 -c "import sys; from icm_lib.data.photos import copy_photos; print(len(copy_photos(sys.argv[1])), 'photos')" "$GPU_DIR/photos"
    du -sh "$GPU_DIR"
}

run() {
    if ! python3 -c "import compressai, pycocotools, pytorch_msssim" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU_DIR"/wheels/*.whl
    fi
    export PYTHONPATH="/tmp/site:$PWD" ICM_PHOTOS="$PWD/$GPU_DIR/photos" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
    [ -n "${FRESH:-}" ] && export ICM_ZOO="$PWD/$GPU_DIR/zoo"  # an empty zoo: every codec from scratch
    python3 - <<'PY'
import torch, compressai, cv2, numpy
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'}; "
      f"compressai {compressai.__version__}, numpy {numpy.__version__}, cv2 {cv2.__version__}", flush=True)
PY
    local started=$SECONDS status=0
    python3 -c "from icm_lib.zoo import ensure_data; ensure_data('demo', 'shapes')"
    echo "[gpu] data in $((SECONDS - started)) s; fingerprints of what was generated:"
    (cd data/demo/datasets/shapes && sha256sum annotations/*.json synth.json | sed 's/^/[gpu]   /')
    local log="${OUT:-/tmp}/train.log"  # progress bars and all; the lines that matter are echoed
    local guard=()  # WALL: seconds the whole run may take; training is stopped in time to export what it has
    [ -n "${WALL:-}" ] && guard=(timeout --signal=TERM --kill-after=10 $((WALL - SECONDS - 45)))
    local only=()  # ONLY: patterns, split on spaces and not expanded by the shell
    [ -n "${ONLY:-}" ] && { set -f; only=(--only $ONLY); set +f; }
    local decay=()  # DECAY_AT: fractions, split on spaces
    [ -n "${DECAY_AT:-}" ] && decay=(--decay-at $DECAY_AT)
    TQDM_MININTERVAL=20 "${guard[@]}" python3 -m icm_lib.cli.zoo train --profile demo --processes "${PROCESSES:-6}" --val-every "${VAL_EVERY:-5000}" \
        ${STEPS:+--steps "$STEPS"} ${BATCH:+--batch-size "$BATCH"} --chunk "${CHUNK:-1000000}" ${RECIPE:+--recipe "$RECIPE"} \
        ${BUDGET:+--time-budget "$BUDGET"} "${only[@]}" "${decay[@]}" --cache-images > "$log" 2>&1 || status=$?
    tr '\r' '\n' < "$log" | grep -v 'it/s\|?it\|Warning\|warnings.warn' | tail -40
    [ "$status" = 0 ] || { echo "[gpu] training failed ($status): exporting what the checkpoints hold"; python3 -m icm_lib.cli.zoo export --profile demo ${RECIPE:+--recipe "$RECIPE"} || true; }
    echo "[gpu] total $((SECONDS - started)) s"
    if [ -n "${OUT:-}" ]; then
        local zoo="${ICM_ZOO:-zoo}"
        tar -C "$zoo" -cf - demo | split -b 15M - "$OUT/zoo-demo.tar.part-"
        ls -l "$OUT"
    fi
    return "$status"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
