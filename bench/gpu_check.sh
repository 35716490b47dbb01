#!/usr/bin/env bash
# GPU figures for User-Personalization, in one call on a lent CUDA machine:
#   1. the `gpu`-marked tests (bf16 autocast training, float32 scores, a solution version served on a CPU);
#   2. Amazon Beauty, 3 seeds, the default config (20 epochs), and the ML-1M half, 3 seeds, for
#      ML1M_MINUTES minutes, all six trainings side by side on the one GPU (each process OMP_NUM_THREADS=2).
# Usage: DATA=../shared/data OUT=/tmp/gpu bash bench/gpu_check.sh
# DATA holds amazon_seq/Beauty.txt and movielens/ml-1m (or ml-1m); logs and a results table go to OUT.
# On a machine whose python3 has torch and Lightning but not Hydra (the lent H200s): copy the venv's
# site-packages/{hydra,omegaconf,antlr4} into an ignored .devsite/ and the two data sets into .devdata/, then
#   export PYTHONPATH=$PWD/.devsite:$PWD; DATA=.devdata ML1M_MINUTES=5 BEAUTY_GUARD=00:00:06:00 bash bench/gpu_check.sh
# (about 7 minutes; MovieLens may not be redistributed: keep .devdata out of git).
set -u
DATA=${DATA:-../shared/data}
OUT=${OUT:-/tmp/gpu_check}
ML1M_MINUTES=${ML1M_MINUTES:-5}
BEAUTY_GUARD=${BEAUTY_GUARD:-00:00:07:00}   # a wall-clock guard only; 20 epochs are expected well before it
SEEDS=${SEEDS:-0 1 2}
BEAUTY_EPOCHS=${BEAUTY_EPOCHS:-20} ML1M_EPOCHS=${ML1M_EPOCHS:-400}   # smaller for a dry run on a CPU
mkdir -p "$OUT"
ML1M=$DATA/movielens/ml-1m; [ -d "$ML1M" ] || ML1M=$DATA/ml-1m
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__,
'cuda', torch.cuda.is_available(), 'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())" \
    2>&1 | tee -a "$OUT/gpu.txt"

start=$(date +%s)
python3 -m pytest -q -m gpu -p no:cacheprovider tests/training/test_precision.py > "$OUT/pytest_gpu.log" 2>&1
status=$?
tail -20 "$OUT/pytest_gpu.log"
echo "gpu tests: $(( $(date +%s) - start )) s"
[ $status -eq 0 ] || { echo "gpu tests failed: no benchmarks"; exit 1; }

pids=()
for seed in $SEEDS; do
    python3 bench/benchmark.py --data beauty --recipes user_personalization --seeds "$seed" --override \
        "data.path=$DATA/amazon_seq/Beauty.txt" +trainer.check_val_every_n_epoch=2 \
        "trainer.max_epochs=$BEAUTY_EPOCHS" "+trainer.max_time=$BEAUTY_GUARD" > "$OUT/beauty_seed$seed.log" 2>&1 &
    pids+=($!)
    python3 bench/benchmark.py --data ml1m_half --recipes user_personalization --seeds "$seed" --override \
        "data.path=$ML1M" "trainer.max_epochs=$ML1M_EPOCHS" "+trainer.max_time=00:00:$(printf %02d "$ML1M_MINUTES"):00" \
        +trainer.check_val_every_n_epoch=2 > "$OUT/ml1m_half_seed$seed.log" 2>&1 &
    pids+=($!)
done
( while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done ) \
    > "$OUT/gpu_utilization.txt" 2>&1 &
monitor=$!
for pid in "${pids[@]}"; do wait "$pid"; done
kill "$monitor" 2>/dev/null
echo "benchmarks: $(( $(date +%s) - start )) s in all"

for f in "$OUT"/beauty_seed*.log "$OUT"/ml1m_half_seed*.log; do
    echo "== $(basename "$f"): $(grep -a -E 'epoch [0-9]+  ' "$f" | tail -1 | sed 's/.*INFO\] - //')"
    grep -a -E "Error|error:" "$f" | tail -3
    grep -a "user_personalization |\|popularity_count |" "$f" | sort -u
done | tee "$OUT/results.txt"
