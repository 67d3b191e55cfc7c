#!/usr/bin/env bash
# One leg of paper-protocol MAML-TRPO runs (HalfCheetahVel and HalfCheetahDir ran this way;
# every run of docs/results.md has finished since) on a lent GPU machine (docs/gpu.md), and
# the CUDA tests and GPU benchmarks, run there from the repository root with the wheels of
# docs/gpu.md carried:
#
#     TESTS=1 BENCH=1 bash scripts/device/train.sh                    # no training
#     END=550 PRESETS="halfcheetah-vel" bash scripts/device/train.sh  # timeout_s: 600
#
# It installs the carried wheels and metarl into /tmp/site (metarl maps envs/ to metarl.envs,
# so the source tree alone is not importable), unpacks the unfinished run folders committed
# as $ARCHIVES/<run>.tgz (default docs/runs/; none today) if there are any, and trains the runs
# side by side (8 physics threads each; the GPU holds the policies and the TRPO steps) until
# END seconds after it started, when SIGTERM makes each trainer checkpoint and write
# results.json. The packed run folders, logs and machine facts come back through $OUT; copy
# the <run>.tgz files into $ARCHIVES here and commit them, so the next leg (on the GPU or on
# a CPU: docs/results.md) resumes where this one stopped.
# PRESETS names the train_rl.py presets to run, at most two (default: none, as every
# paper-protocol run has finished: only the tests and benchmarks asked for run);
# each run's folder is runs/<run>, <run> being the preset with "halfcheetah" shortened to
# "hc" and, for HalfCheetah, "-v1" appended (runs/hc-vel-v1, runs/ant-dir): the presets run
# the paper's time step (the finished runs are in metarl/pretrained/).
# BENCH=1 first runs the TRPO-step and sampler benchmarks (docs/benchmarks.md, ≈ 90 s).
# TESTS=1 first runs the CUDA tests (tests/ -k cuda) against the /tmp/site install, from /tmp
# with --import-mode=importlib so that the source tree's metarl (no envs/) cannot shadow it;
# their summary goes into machine.txt.
# Run folders go to runs/ under the current folder (the repository root on the device).
# DEV=cpu, SKIP_PIP=1, GRACE (seconds between SIGTERM and SIGKILL, default 45) and
# EXTRA="<train_rl.py flags>" make a tiny dry run possible without a GPU
# (tests/test_device_script.py).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
END=${END:-550}
GRACE=${GRACE:-45}
ARCHIVES=${ARCHIVES:-$REPO/docs/runs}
DEV=${DEV:-cuda}
PRESETS=${PRESETS:-}
OUT=${OUT:?set OUT to the folder whose files come back}
if [ -z "${SKIP_PIP:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$REPO"/.whl/*.whl &&
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target /tmp/site "$REPO" || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
{ date -u; nvidia-smi -L 2>/dev/null; echo "cpus: $(nproc)"; uptime
  (cd /tmp && python3 -c "import torch, mujoco, gymnasium, metarl.envs
print('torch', torch.__version__, 'mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__)")
} 2>&1 | tee "$OUT/machine.txt"
if [ -n "${TESTS:-}" ]; then
  (cd /tmp && timeout 180 python3 -m pytest --import-mode=importlib -p no:cacheprovider -q -rs \
     --rootdir "$REPO" -c "$REPO/pyproject.toml" -k cuda "$REPO/tests/test_sampler.py" \
     "$REPO/tests/test_maml_trpo.py") 2>&1 | tail -n 8 | tee -a "$OUT/machine.txt"
fi
if [ -n "${BENCH:-}" ]; then
  timeout 150 python3 "$REPO/scripts/benchmarks/bench_trpo.py" --device "$DEV" --repeats 3 \
    --out "$OUT/bench_trpo.json" > "$OUT/bench.log" 2>&1
  timeout 100 python3 "$REPO/scripts/benchmarks/bench_sampler.py" --device "$DEV" --models HalfCheetah \
    --repeats 2 --baseline-steps 20 --out "$OUT/bench_sampler.json" >> "$OUT/bench.log" 2>&1
  cat "$OUT/bench.log"  # at most 8 files come back: bench.log holds both outputs
fi
if [ -z "$PRESETS" ]; then
  echo "PRESETS is empty: nothing trained (name the train_rl.py presets to train, e.g." \
       "PRESETS=\"halfcheetah-vel\")"
  ls -l "$OUT"
  exit 0
fi
mkdir -p runs
run_name() {  # the run folder of preset $1 (see PRESETS above)
  local run=${1/halfcheetah/hc}
  case $run in hc-*) run=$run-v1 ;; esac
  echo "$run"
}
train_seconds=$((END - SECONDS - GRACE))
if [ "$train_seconds" -lt 1 ]; then
  echo "END=$END leaves no time to train after $SECONDS s of set-up and GRACE=$GRACE s;" \
       "raise END (the device tool's timeout_s minus ≈ 50 s)" >&2
  exit 2
fi
for preset in $PRESETS; do
  run=$(run_name "$preset")
  if [ -f "$ARCHIVES/$run.tgz" ] && [ ! -d "runs/$run" ]; then
    tar xzf "$ARCHIVES/$run.tgz"
  fi
  resume=$([ -f "runs/$run/config.json" ] && echo --resume)
  # shellcheck disable=SC2086  # EXTRA holds several flags
  timeout -s TERM -k "$GRACE" "$train_seconds" python3 "$REPO/scripts/train_rl.py" \
    --preset "$preset" --device "$DEV" --threads 8 --iterations 500 \
    --out-dir "runs/$run" $resume ${EXTRA:-} > "$OUT/train-$run.log" 2>&1 &
done
wait
for preset in $PRESETS; do
  run=$(run_name "$preset")
  tr '\r' '\n' < "$OUT/train-$run.log" | grep -v WARNING | tail -n 3
  tar czf "$OUT/$run.tgz" "runs/$run"
done
ls -l "$OUT"
