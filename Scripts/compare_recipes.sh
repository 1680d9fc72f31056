#!/bin/sh
# The README's "Which recipe" table: final-epoch Fashion-MNIST test accuracy of
# the seed network for each optimizer/schedule recipe over seeds 0 1 2, one
# thread (recipe names: no commas, they are CSV fields). Usage: Scripts/compare_recipes.sh [BNKIT] [OUT.csv]
# (BNKIT defaults to the `make train` build; SEEDS and EPOCHS may be set.)
set -eu
BNKIT=${1:-.build-native/release/bnkit}
OUT=${2:-experiments/recipes.csv}
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-10}
mkdir -p "$(dirname "$OUT")"
echo "recipe,seed,test_accuracy" > "$OUT"
while IFS='|' read -r name args; do
  [ -z "$name" ] && continue
  for seed in $SEEDS; do
    # shellcheck disable=SC2086
    accuracy=$("$BNKIT" train --epochs "$EPOCHS" --seed "$seed" --threads 1 $args | sed -n 's/^final  test accuracy \([0-9.]*\)%.*/\1/p')
    [ -n "$accuracy" ] || { echo "compare_recipes: $name seed $seed printed no final accuracy" >&2; exit 1; }
    echo "$name,$seed,$accuracy" >> "$OUT"
    echo "$name seed $seed: $accuracy%"
  done
done <<'RECIPES'
sgd plain (lr 0.1 momentum 0.9)|--optimizer sgd --lr 0.1
sgd + cosine|--optimizer sgd --lr 0.1 --schedule cosine
sgd + 1 warm-up epoch + cosine|--optimizer sgd --lr 0.1 --schedule cosine --warmup-epochs 1
sgd + onecycle (peak 0.1)|--optimizer sgd --lr 0.1 --schedule onecycle
adam (lr 1e-3)|--optimizer adam --lr 0.001
adam + cosine|--optimizer adam --lr 0.001 --schedule cosine
adamw (lr 1e-3 wd 0.01) + cosine|--optimizer adamw --lr 0.001 --weight-decay 0.01 --schedule cosine
RECIPES
# mean ± sample std per recipe and the verdict against the plain one
python3 "$(dirname "$0")/recipe_table.py" "$OUT"
