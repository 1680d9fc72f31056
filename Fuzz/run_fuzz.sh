#!/bin/sh
# One libFuzzer target for `make fuzz`: runs it SECONDS seconds on the
# growing corpus (.build-fuzz/corpus/TARGET, new inputs land there) plus the
# committed seeds (Fuzz/corpus/TARGET) with its dictionary, then prints the
# coverage libFuzzer reached and how the corpus grew. Crashing inputs land in
# fuzz-findings/TARGET/; the full log in .build-fuzz/logs/TARGET.log.
#
#   Fuzz/run_fuzz.sh TARGET BINARY SECONDS [libFuzzer flags…]
set -u
target=$1 binary=$2 seconds=$3
shift 3
# absolute paths: the cli target works in a scratch directory of its own
root=$(pwd)
corpus=$root/.build-fuzz/corpus/$target
log=$root/.build-fuzz/logs/$target.log
mkdir -p "$corpus" fuzz-findings/"$target" .build-fuzz/logs
before=$(ls "$corpus" | wc -l)
BNK_FUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 \
  -dict="$root"/Fuzz/dictionaries/"$target".dict -artifact_prefix="$root"/fuzz-findings/"$target"/ "$@" \
  "$corpus" "$root"/Fuzz/corpus/"$target" >"$log" 2>&1
status=$?
after=$(ls "$corpus" | wc -l)
# "#N INITED cov: C ft: F corp: K/..." and "#N DONE cov: C ft: F corp: K/..."
field() { grep -E "^#[0-9]+[[:space:]]+$1[[:space:]]" "$log" | grep -E "[[:space:]]$2: " | tail -1 | sed -E "s/.*[[:space:]]$2: ([0-9]+).*/\1/"; }
runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
echo "fuzz $target: coverage $(field INITED cov) -> $(field DONE cov) edges, features $(field INITED ft) -> $(field DONE ft);" \
     "corpus $(field INITED corp) -> $(field DONE corp) inputs ($before -> $after files in $corpus, seeds $(ls Fuzz/corpus/"$target" | wc -l));" \
     "${runs:-?} runs in $seconds s"
if [ $status -ne 0 ]; then
  echo "fuzz $target: libFuzzer exited $status — a finding? the end of $log:"
  tail -40 "$log"
  exit $status
fi
