#!/usr/bin/env bash
# The CUDA measurements of issue #13 in one command, for a machine with a GPU (RESULTS.md's GPU tables):
#
#   JOINT_ERE_DATA=... GLOVE_50D=... [TRANSFORMER_MODEL=... TRANSFORMER_DIM=...] bash benchmarks/cuda.sh [OUT_DIR]
#
# Each step writes OUT_DIR/<step>.txt (default OUT_DIR: benchmarks-cuda) and prints its last lines; a step that
# fails is reported and the others still run; the exit status counts the failed steps. The steps:
#   tests            the tests that run on CUDA (encoders, LSTMs, CRF, the trainer on cuda, distributed)
#   encoders-*       benchmarks/encoders.py --device cuda, the recurrent steps compiled and eager
#   speed-conll04    benchmarks/speed.py --cuda-device 0 on conll04.jsonnet (training and prediction)
#   speed-conll04-pfn  the same on conll04_pfn.jsonnet, when TRANSFORMER_MODEL is set
#   torchrun         two epochs of conll04.jsonnet under torchrun --nproc_per_node 1, against plain train
# PYTHON picks the interpreter (default python3).
set -u
out=${1:-benchmarks-cuda}
python=${PYTHON:-python3}
mkdir -p "$out"
failed=0

step() {
    local name=$1
    shift
    echo "== $name: $*"
    local started=$SECONDS
    if "$@" >"$out/$name.txt" 2>&1; then
        echo "   done in $((SECONDS - started)) s"
    else
        echo "   FAILED (exit $?) after $((SECONDS - started)) s"
        failed=$((failed + 1))
    fi
    tail -n 12 "$out/$name.txt" | sed 's/^/   /'
}

step tests "$python" -m pytest tests -q -p no:cacheprovider -o addopts="" \
    -k "cuda or lstm or crf or encoders or distributed"
step encoders-compiled "$python" benchmarks/encoders.py --device cuda --steps compiled
step encoders-eager "$python" benchmarks/encoders.py --device cuda --steps eager
step speed-conll04 "$python" benchmarks/speed.py --cuda-device 0 --epochs 2
if [ -n "${TRANSFORMER_MODEL:-}" ]; then
    step speed-conll04-pfn "$python" benchmarks/speed.py --config training_config/conll04_pfn.jsonnet \
        --cuda-device 0 --epochs 2
fi
runs=$(mktemp -d)
overrides='{"trainer": {"num_epochs": 2, "cuda_device": 0}}'
step train "$python" -m joint_ere train training_config/conll04.jsonnet -s "$runs/plain" -o "$overrides"
step torchrun "$python" -m torch.distributed.run --nproc_per_node 1 -m joint_ere train \
    training_config/conll04.jsonnet -s "$runs/torchrun" -o "$overrides"
rm -rf "$runs"
echo "$failed step(s) failed; outputs in $out/"
exit "$failed"
