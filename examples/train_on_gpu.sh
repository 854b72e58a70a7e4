#!/usr/bin/env bash
# Train a loopcraft-64 diffusion model from nothing on one CUDA GPU within a fixed time budget:
# generate Loopcraft training walks, encode them with the bundled autoencoder, train, and leave a
# run folder that `millivid rollout/evaluate --checkpoint(-for) RUN`, `python -m models.bundle --run RUN`
# and `gym.make(..., checkpoint="RUN/checkpoint/model")` accept. Every stage resumes if the script is run again with the same OUT.
#
#   examples/train_on_gpu.sh OUT                      # defaults below
#   MINUTES=20 SIZE=cpu-wide examples/train_on_gpu.sh runs/gpu-wide
#
# The learning-rate schedule needs a step count, and the steps a budget buys depend on the GPU, so
# training runs in two sittings of one run: a short calibration sitting measures steps per second,
# then the run resumes with --steps set to fill MINUTES in all, the last COOLDOWN_FRACTION of them
# decaying the learning rate to zero. Everything is the package's own CLI; on a CPU (DEVICE=cpu,
# tiny sizes) the same script runs end to end, which is how it is tested.
set -euo pipefail

OUT=${1:?usage: examples/train_on_gpu.sh OUT_DIR}
VIDEOS=${VIDEOS:-1000}            # training walks (512 frames each: ~2.5 GB of frames, 2.8 GB of latents)
FRAMES=${FRAMES:-512}
WORKERS=${WORKERS:-$(nproc)}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-cpu}                 # the env's size; cpu-wide / S are larger (slower in a CPU env)
STRATEGY=${STRATEGY:-millivid}
MIX_STREAMING=${MIX_STREAMING:-0}
BATCH=${BATCH:-256}
LR=${LR:-1e-3}
CONTEXT_NOISE=${CONTEXT_NOISE:-0.3}
MINUTES=${MINUTES:-6}             # training wall time in all (both sittings)
CALIBRATION_MINUTES=${CALIBRATION_MINUTES:-0.5}
COOLDOWN_FRACTION=${COOLDOWN_FRACTION:-0.2}
ENCODE_BATCH=${ENCODE_BATCH:-1024}
MILLIVID=${MILLIVID:-millivid}

mkdir -p "$OUT"
echo "== generate: $VIDEOS walks x $FRAMES frames, $WORKERS workers"
$MILLIVID generate --split train --videos "$VIDEOS" --frames "$FRAMES" --resolution 64 \
  --out "$OUT/data" --workers "$WORKERS" --no-progress
echo "== encode with the bundled loopcraft-64 encoder on $DEVICE"
$MILLIVID encode --checkpoint loopcraft-64 --data "$OUT/data" --out "$OUT/latents" \
  --device "$DEVICE" --batch-size "$ENCODE_BATCH"

train() {  # train STEPS COOLDOWN MAX_MINUTES: one sitting of the run in $OUT/run
  $MILLIVID train-diffusion --latents "$OUT/latents" --out "$OUT/run" --strategy "$STRATEGY" \
    --mix-streaming "$MIX_STREAMING" --size "$SIZE" --batch-size "$BATCH" --lr "$LR" \
    --context-noise "$CONTEXT_NOISE" --device "$DEVICE" --steps "$1" --cooldown-steps "$2" \
    --max-minutes "$3" --checkpoint-every-minutes 2 --eval-every 500
}

if [ ! -f "$OUT/run/steps.txt" ]; then
  echo "== calibration sitting: $CALIBRATION_MINUTES min"
  # A large --steps keeps the lr constant after warm-up; --max-minutes (run total) ends the sitting.
  train 100000000 0 "$CALIBRATION_MINUTES"
  python3 - "$OUT/run" "$MINUTES" "$COOLDOWN_FRACTION" <<'EOF'
import csv, sys
run, minutes, cooldown = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [r for r in csv.DictReader(open(f"{run}/log.csv")) if r["time_s"]]
step, seconds = int(rows[-1]["step"]), float(rows[-1]["time_s"])
total = max(step + 1, int(step / seconds * minutes * 60))
with open(f"{run}/steps.txt", "w") as handle:
    handle.write(f"{total} {max(1, int(total * cooldown))}\n")
print(f"{step} steps in {seconds:.0f} s: {total} steps fill {minutes} min")
EOF
fi
read -r STEPS COOLDOWN < "$OUT/run/steps.txt"
echo "== training to $STEPS steps (cooldown $COOLDOWN), $MINUTES min in all"
train "$STEPS" "$COOLDOWN" "$MINUTES"
echo "== done: checkpoint $OUT/run/checkpoint/model (log $OUT/run/log.csv)"
