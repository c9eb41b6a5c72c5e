#!/usr/bin/env bash
# Build the models reproducibly (same inputs -> same model.txt and metadata.json, byte for byte).
#
#   scripts/build-models.sh default            the demo's default model, trained on generator
#                                              data -> scoring/default_model/ (committed), then
#                                              evaluated on other cards in a later month
#   scripts/build-models.sh shared [CSV]       a model trained on the shared Sparkov file
#                                              (default ../shared/data/sparkov_2023_train.csv.gz)
#                                              -> $FRAUD_STATE_DIR/models-built/sparkov/
#   scripts/build-models.sh splits [CSV]       the quality check on later periods and unseen
#                                              cards: for each split, `fraud train` on the earlier
#                                              part, `fraud evaluate --json` on the later part;
#                                              figures -> $FRAUD_STATE_DIR/models-built/splits.json
#
# Run from anywhere; uses .venv/bin/python unless PYTHON is set. Single-threaded LightGBM: on
# a 2-core machine `shared` takes about 5 minutes, `splits` about 20.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
STATE=${FRAUD_STATE_DIR:-.fraud}
OUT="$STATE/models-built"
SHARED_DEFAULT=../shared/data/sparkov_2023_train.csv.gz
fraud() { "$PY" -m service.cli "$@"; }

build_default() {
    local data="$OUT/demo-data.csv"
    mkdir -p "$OUT"
    # The demo's data: 2,000 cards, 60 days, seed 42 (what `fraud demo` generates by default).
    fraud generate --customers 2000 --days 60 --start 2024-01-01 --seed 42 --out "$data" --quiet
    # Moderate size (num_leaves 31, at most 400 rounds) keeps model.txt under 1 MB and the
    # lleaves compile to seconds.
    fraud train --data "$data" --out scoring/default_model --num-leaves 31 --rounds 400
    # Its figures on other cards in a later month (another seed), replayed from empty state.
    local check="$OUT/demo-check.csv"
    fraud generate --customers 1000 --days 30 --start 2024-03-01 --seed 43 --out "$check" \
        --quiet
    fraud evaluate --model scoring/default_model --data "$check"
    rm -f "$data" "$check"
}

build_shared() {
    local data=${1:-$SHARED_DEFAULT}
    [[ -f "$data" ]] || { echo "no shared data at $data (pass the CSV path)" >&2; exit 2; }
    fraud train --data "$data" --out "$OUT/sparkov"
}

evaluate_splits() {
    local data=${1:-$SHARED_DEFAULT}
    [[ -f "$data" ]] || { echo "no shared data at $data (pass the CSV path)" >&2; exit 2; }
    mkdir -p "$OUT/splits"
    # name cut [holdout]: train on rows before the cut (minus held-out cards), test on rows
    # from the cut (only held-out cards when there is a holdout).
    local splits=(
        "jan-jun_vs_jul-dec 2023-07-01 0"
        "jan-aug_vs_sep-dec 2023-09-01 0"
        "jan-sep_vs_oct-dec 2023-10-01 0"
        "unseen-cards_jan-aug_vs_sep-dec 2023-09-01 0.2"
    )
    local report="$OUT/splits.json"
    echo "{" > "$report.tmp"
    local first=1
    for spec in "${splits[@]}"; do
        read -r name cut holdout <<< "$spec"
        local dir="$OUT/splits/$name"
        echo "== $name" >&2
        "$PY" -m scoring.splits --data "$data" --cut "$cut" --holdout-cards "$holdout" \
            --train-out "$dir/train.csv" --test-out "$dir/test.csv" >&2
        fraud train --data "$dir/train.csv" --out "$dir/model"
        local figures
        figures=$(fraud evaluate --model "$dir/model" --data "$dir/test.csv" --json)
        echo "$name: $figures" >&2
        [[ $first == 1 ]] || echo "," >> "$report.tmp"
        first=0
        printf '  "%s": %s' "$name" "$figures" >> "$report.tmp"
        rm -f "$dir/train.csv" "$dir/test.csv"
    done
    printf '\n}\n' >> "$report.tmp"
    mv "$report.tmp" "$report"
    cat "$report"
}

case "${1:-}" in
    default) build_default ;;
    shared) build_shared "${2:-}" ;;
    splits) evaluate_splits "${2:-}" ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
