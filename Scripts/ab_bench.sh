#!/bin/sh
# A/B speed check of the kernels: the bench built from an old commit (default:
# the merge base with main) and from the working tree, both native builds,
# run ALTERNATING on the same cases (old, new, new, old, old, new, …) so load
# from other jobs falls on both alike. Prints each run's medians and, per case and
# thread count, the ratio old best median / new best median (> 1: new faster).
#
#   Scripts/ab_bench.sh [ROUNDS] [BASE]        (make bench-ab)
#   AB_FILTERS="--filter bn. --filter gn." AB_THREADS=1,2
set -eu
ROUNDS=${1:-3}
BASE=${2:-$(git merge-base HEAD main)}
THREADS=${AB_THREADS:-1,2}
FILTERS=${AB_FILTERS:---filter bn. --filter gn. --filter step --filter epoch}
NATIVE="-c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBATCHNORMKIT_FMA"
# the Makefile's native build adds AVX-512 where the CPU has it: both sides here too
if grep -m1 -qw avx512f /proc/cpuinfo 2>/dev/null; then NATIVE="$NATIVE -Xswiftc -DBATCHNORMKIT_AVX512"; fi
OLD=.build-ab-old
mkdir -p $OLD/src bench-results/ab
if [ "$(cat $OLD/commit 2>/dev/null)" != "$BASE" ]; then
  rm -rf $OLD/src && mkdir -p $OLD/src
  git archive "$BASE" | tar -x -C $OLD/src
  echo "$BASE" > $OLD/commit
fi
swift build $NATIVE --package-path $OLD/src --scratch-path $OLD/build --product bnkbench
swift build $NATIVE --scratch-path .build-native --product bnkbench
# odd rounds run old first, even rounds new first: a drift of the host within
# a round (the second run of a pair measured slower on a loaded host) then
# falls on both sides alike
for r in $(seq 1 "$ROUNDS"); do
  order=$([ $((r % 2)) = 1 ] && echo "old new" || echo "new old")
  for side in $order; do
    bin=$([ $side = old ] && echo $OLD/build/release/bnkbench || echo .build-native/release/bnkbench)
    echo "== round $r: $side"
    # the paired measurements only lengthen a run: medians are compared here
    extra=$($bin --help | grep -q -- --no-paired && echo --no-paired || true)
    # shellcheck disable=SC2086
    $bin --build native --threads "$THREADS" --no-alloc --no-reference $extra $FILTERS --json bench-results/ab/$side-$r.json > bench-results/ab/$side-$r.txt
  done
done
python3 Scripts/ab_table.py bench-results/ab "$ROUNDS"
