#!/usr/bin/env bash
# The GPU plan: the one command to run first whenever a GPU machine is lent (docs/gpu.md),
# from the repository root, with the wheels of docs/gpu.md carried (and the Omniglot files in
# data/omniglot, an ignored folder, when ../shared is not there):
#
#     bash scripts/device/gpu_plan.sh          # device tool: carry [".whl", "data"], timeout_s 600
#
# In about nine minutes it
#   1. installs the wheels and metarl (scripts/device/train.sh) and runs the CUDA tests;
#   2. benchmarks a second-order few-shot meta-iteration on the GPU (bench_fewshot.py): our
#      paths against the hand-written loop, then compiled, then compiled with CUDA graphs and
#      TF32, and the float64 exactness check (each prints its compile time);
#   3. spends the minutes left on the most valuable pending paper-protocol run, resumed from
#      its committed folder docs/runs/<run> (or started): the first of RUNS that has not
#      finished (default: omniglot-20way-1shot, then miniimagenet-5way-1shot), stopped with
#      SIGTERM END seconds after the start, so that it checkpoints and writes results.json.
# What comes back through $OUT (at most 8 files): machine.txt, bench-fewshot.log,
# bench-fewshot.jsonl (one JSON object per benchmark), train-<run>.log and <run>.tgz, the
# run folder without its older checkpoints. Here, unpack it over docs/runs/<run> and commit:
#     tar xzf /work/.device/<n>/<run>.tgz -C docs/runs && git add docs/runs/<run>
#
# A dry run on CPU (tests/test_device_script.py): DEV=cpu SKIP_PIP=1 COMPILE=0 with tiny
# budgets in BENCH_EXTRA and TRAIN_EXTRA (flags passed to bench_fewshot.py / train_supervised.py),
# SLOW=k to give the uncompiled benchmarks k times their time on a slow or busy machine, and
# BENCH=0 to go straight to the training leg.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
START=$SECONDS
END=${END:-540}
GRACE=${GRACE:-40}
DEV=${DEV:-cuda}
RUNS=${RUNS:-omniglot-20way-1shot miniimagenet-5way-1shot}
RUN_DIRS=${RUN_DIRS:-$REPO/docs/runs}
OUT=${OUT:?set OUT to the folder whose files come back}
export OUT DEV
TESTS=1 BENCH= PRESETS="" bash "$REPO/scripts/device/train.sh" > "$OUT/setup.log" 2>&1 \
  || { cat "$OUT/setup.log"; exit 1; }
rm -f "$OUT/setup.log"  # its summary is in machine.txt
[ -z "${SKIP_PIP:-}" ] && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1
DATA=${DATA_ROOT:-}
if [ -z "$DATA" ]; then
  for d in "$REPO/data/omniglot" "$REPO/../shared/data/omniglot"; do
    [ -f "$d/images_background.npz" ] && DATA=$d && break
  done
fi

bench() {  # one bench_fewshot.py call: its lines into bench-fewshot.log, its JSON appended
  local limit=$1; shift
  echo "== bench_fewshot.py $*" >> "$OUT/bench-fewshot.log"
  # shellcheck disable=SC2086  # BENCH_EXTRA holds several flags
  timeout "$limit" python3 "$REPO/scripts/benchmarks/bench_fewshot.py" --device "$DEV" "$@" \
    ${BENCH_EXTRA:-} --out /tmp/bench.json >> "$OUT/bench-fewshot.log" 2>&1
  [ $? = 124 ] && echo "(stopped after its $limit s)" >> "$OUT/bench-fewshot.log"
  [ -f /tmp/bench.json ] && python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))" \
    /tmp/bench.json >> "$OUT/bench-fewshot.jsonl" && rm -f /tmp/bench.json
}
if [ "${BENCH:-1}" = 1 ]; then
  bench $((60 * ${SLOW:-1}))
  if [ "${COMPILE:-1}" = 1 ]; then
    bench 150 --compile --fresh-compile
    bench 150 --compile --compile-mode reduce-overhead --tf32
  fi
  bench $((60 * ${SLOW:-1})) --dtype float64 --repeats 3
  cat "$OUT/bench-fewshot.log"
fi

for run in $RUNS; do  # the first run that has not finished gets the time left
  if [ -f "$RUN_DIRS/$run/results.json" ] && python3 -c "import json,sys
sys.exit(0 if json.load(open(sys.argv[1])).get('finished') else 1)" "$RUN_DIRS/$run/results.json"
  then continue; fi
  case $run in omniglot*) [ -z "$DATA" ] && { echo "no Omniglot files: skipping $run"; continue; } ;;
               *) [ -z "${MINIIMAGENET_ROOT:-}" ] && { echo "no MiniImagenet cache" \
                    "(set MINIIMAGENET_ROOT): skipping $run"; continue; } ;; esac
  mkdir -p runs
  [ -d "$RUN_DIRS/$run" ] && [ ! -d "runs/$run" ] && cp -r "$RUN_DIRS/$run" "runs/$run"
  resume=$([ -f "runs/$run/config.json" ] && echo --resume)
  root=$([ "${run%%-*}" = omniglot ] && echo "$DATA" || echo "${MINIIMAGENET_ROOT:-}")
  left=$((END - (SECONDS - START) - GRACE))
  if [ "$left" -lt 30 ]; then echo "no time left to train $run"; break; fi
  compile=$([ "${COMPILE:-1}" = 1 ] && echo --compile)
  # shellcheck disable=SC2086  # TRAIN_EXTRA holds several flags
  timeout -s TERM -k "$GRACE" "$left" python3 "$REPO/scripts/train_supervised.py" \
    --preset "$run" --device "$DEV" --eval-every 2000 $compile --data-root "$root" \
    --out-dir "runs/$run" $resume ${TRAIN_EXTRA:-} > "$OUT/train-$run.log" 2>&1
  tr '\r' '\n' < "$OUT/train-$run.log" | grep -v WARNING | tail -n 3
  python3 "$REPO/scripts/device/pack_run.py" "runs/$run" --tgz "$OUT/$run.tgz"
  break
done
ls -l "$OUT"
