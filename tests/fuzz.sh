#!/usr/bin/env bash
# The cargo fuzz targets (tests/fuzz) for a bounded time each: UAEDGE_FUZZ_SECS seconds
# (default 60). Fails on any crash, panic, failed check or input that runs over 10 s;
# the input is then in tests/fuzz/artifacts/<target>/ (replay: run the target's binary in
# tests/fuzz/target/<host>/release/ with the file as its argument). Prints per target the
# runs executed and the coverage (libFuzzer's cov: edges, ft: features).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${UAEDGE_FUZZ_SECS:-60}"
targets=(config sparkplug_command modbus_response opcua_frames condition_inputs history_chunks exec_protocol)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# cargo fuzz passes nightly-only flags (-Zsanitizer, sancov options); only the stable
# toolchain exists here, and RUSTC_BOOTSTRAP lets it take them.
export RUSTC_BOOTSTRAP=1
# -a keeps overflow checks and debug assertions in the optimised build: they are findings.
# No sanitizer and 16 codegen units by default keep a cold build inside the CI budget (our
# decoders have no `unsafe`); UAEDGE_FUZZ_SANITIZER=address for a deeper local run.
flags=(--fuzz-dir tests/fuzz -O -a --codegen-units 16 --sanitizer "${UAEDGE_FUZZ_SANITIZER:-none}")
cargo fuzz build "${flags[@]}"
bin="${CARGO_TARGET_DIR:-tests/fuzz/target}/$(rustc -vV | sed -n 's/^host: //p')/release"

# One target per core at a time: each still gets its whole bound on one core.
jobs="${UAEDGE_FUZZ_JOBS:-$(nproc)}"
fuzz_one() {
  local t=$1
  local corpus="tests/fuzz/corpus/$t"
  local log="tests/fuzz/artifacts/$t.log"
  mkdir -p "$corpus" "tests/fuzz/artifacts/$t"
  local args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1)
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  # New inputs go to the (ignored) corpus folder; the committed seeds are only read.
  local dirs=("$corpus")
  [ -d "tests/fuzz/seeds/$t" ] && dirs+=("tests/fuzz/seeds/$t")
  # The binary itself, not `cargo fuzz run`: that re-checks the whole build once per target.
  args+=(-artifact_prefix="tests/fuzz/artifacts/$t/")
  local status=0
  # In the background with a trap, so that stopping this job stops its fuzzer too.
  "$bin/$t" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 &
  local pid=$!
  trap 'kill "$pid" 2>/dev/null' TERM
  wait "$pid" || status=$?
  echo "$status" >"tests/fuzz/artifacts/$t.status"
}

# An interrupted run leaves no fuzzer behind.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
for t in "${targets[@]}"; do
  rm -f "tests/fuzz/artifacts/$t.status"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait

failed=0
for t in "${targets[@]}"; do
  log="tests/fuzz/artifacts/$t.log"
  if [ "$(cat "tests/fuzz/artifacts/$t.status" 2>/dev/null)" = 0 ]; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -n 1 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null | tail -n 1 || true)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" 2>/dev/null | tail -n 1 || true)
  echo "fuzz $t: $status, ${runs:-?} runs (bound ${secs}s, ${rate:-?}/s), ${cov:-no coverage line}"
  if [ "$status" = FAILED ]; then
    tail -n 60 "$log" 2>/dev/null || true
  fi
done
exit "$failed"
