"""Hyper-parameter search: (A) Optuna TPE vs random search at the same trial budget on a real
objective, and (B) the tuning service's per-trial scheduling overhead against the trials' own
run time, each against its baseline in the same run.

    python benchmarks/tuning.py [--trials 40] [--seeds 20] [--concurrency 1] [--train-rows 10000]
        [--max-iter 100] [--tune-trials 4] [--epochs 1] [--batch 16] [--seq-len 64]
        [--eval-rows 300] [--cpus 2] [--parts ab] [--quiet-wait 120] [--repeats 3] [--out PATH]

Writes benchmarks/results/tuning.json. Needs ../shared/data (relative to the repository root):
without it the benchmark says so and exits 0 without writing anything. What it measures, and how:

A. Search quality. The objective: scikit-learn's HistGradientBoostingClassifier (``--max-iter``
   boosting rounds, no early stopping, random_state 0, the categorical columns as native
   categories) fitted on a fixed ``--train-rows`` sample of UCI Adult's adult.data and scored by
   its log-loss on the whole of adult.test (minimised: continuous, so no ties). Five parameters,
   every distribution kind: learning_rate (loguniform), max_leaf_nodes (integer, log),
   min_samples_leaf (integer, log), max_features (uniform), max_bins (choice). The searchers
   are the real forgeline plugins, ``PluginRegistry().create("searchers", "optuna" | "random")``
   with their default configs (optuna: TPE, 5 random start-up trials, multivariate,
   constant_liar), built into a SearchPlan from a SearchContext exactly as the tuning service
   builds them, and run by a real ``ray.tune.Tuner`` on this process's local Ray, with a
   function trainable that fits, scores and ``tune.report()``s the log-loss (the data go to the
   trials once per search through ``tune.with_parameters``). Both searchers get the same budget
   (``--trials`` trials, ``--concurrency`` at once, the same CPUs per trial) and the same seed
   ``i`` for seed i = 0 .. ``--seeds``-1; which searcher runs first alternates with the seed.
   Reported: the share of seeds where TPE's best log-loss is below random search's (goal
   >= 0.7), a one-sided sign-test p-value of that count, the mean best of each, the mean
   best-so-far after every trial, and every trial's value (``details`` in the JSON).

B. Scheduling overhead. A real tuning service (forgeline.server.serve in a thread, on a free
   loopback port, its FORGELINE_HOME a temporary folder) attached to this process's Ray (its
   ensure_ray() is a no-op when Ray is up). The UCI sentiment sentences (amazon + imdb) are put
   into its artifact store as a train and an eval dataset (ArtifactStore + DatasetRepository.save
   on the same home, as the integration tests do), and one TuneModel call searches the bundled
   MiniLM (LoRA) over learning_rate (loguniform) and finetune.config.r (choice):
   ``--tune-trials`` trials, one at a time, 2 CPUs each, the fifo scheduler, ``--epochs`` epoch,
   max_sequence_length ``--seq-len``, batch ``--batch``, scoring the eval rows after the epoch.
   The baseline: the same trainings run back to back in one plain process (no Ray Tune, no
   service) calling forgeline.finetune.recipe.run_recipe with a local session (rank 0 of 1,
   prepare = identity, checkpoint() -> None, report() keeps the metrics and does nothing else).
   Their RecipeConfigs are built the way the service builds them (TuningJobs.run_tune: the
   service's own planner on the same request, finetune.runner.recipe_config, checkpoint_every = 0,
   then each trial's parameters, read back from the TuneModelResponse, applied with
   planning.recipe_updates): same data, same model, same configs, same epochs, same seed. The
   plain process uses as many torch threads as a trial gets (Ray sets OMP_NUM_THREADS to the
   trial's CPUs: torch.set_num_threads(cpus)) and imports torch / transformers / peft before the
   clock starts; each run is timed around its run_recipe call (loading the model and tokenizer,
   tokenising, training, scoring the eval rows, writing the checkpoint files and the finished
   model: a trial does all of that too). As a check that both sides did the same work, each
   plain run's final eval_loss is compared with its trial's.
   overhead share = (TuneModel wall time, from the call to its response in hand, - sum of the
   plain run times) / sum of the plain run times (goal <= 0.10). That overhead is everything the
   service adds around the trainings: planning the request, starting the Tune experiment and the
   trial actor (a fresh process importing torch / transformers / peft; reuse_actors keeps it for
   the next trials), Tune's loop, callbacks and event writes, copying every epoch's checkpoint
   into the experiment folder, the parameter importances, committing the best model as an
   artifact and removing the run folder, and the client noticing the operation is done. It is
   split, from the operation's events, into the head (call -> first trial started), the trials'
   own time beyond the plain runs (the service's per-trial seconds - the plain run), the gaps
   between trials and the tail (last trial finished -> response in hand).

A shared machine: one run is not a figure. Part B runs ``--repeats`` repetitions, interleaved;
a repetition is one TuneModel call (seed = the repetition's number) and then the plain runs of
the trials it made. Every part B metric is the median over the repetitions, with its spread in
the JSON, and the goal is judged on the median; ``details`` holds the last repetition's trials.
Part A is already a repeated, paired comparison (``--seeds`` searches per searcher, the first
alternating). Before part A and before each side of part B the benchmark waits
(``--quiet-wait``) until processes outside its tree use under 10% of the CPUs, and records the
share they use meanwhile ("noise": part A as one entry, then each repetition of part B). Part
A's quality numbers do not depend on the load, only its times do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forgeline.v1 import common_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import _common  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from _common import (  # noqa: E402
    SENTENCE_FILES,
    SHARED,
    ForeignLoad,
    bench_options,
    fold,
    interleave,
    load_sentences,
    noise,
    print_summary,
    results,
    start_ray,
    wait_quiet,
    write_results,
)

ADULT = SHARED / "fairness" / "adult"
ADULT_COLUMNS = (  # adult.names, in file order; the last one is the label
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
ADULT_CATEGORICAL = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
)
OBJECTIVE = "logloss"
SEARCHERS = (("tpe", "optuna"), ("random", "random"))


# --- A: TPE vs random search on UCI Adult -------------------------------------------------------


def read_adult(path: Path) -> list[list[str]]:
    """Rows of 15 fields; skips adult.test's '|1x3 Cross validator' line and blank lines."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("|"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == len(ADULT_COLUMNS):
            rows.append(fields)
    return rows


def load_adult(train_rows: int, seed: int) -> dict:
    """Train: a fixed ``train_rows`` sample of adult.data; validation: all of adult.test.
    Categorical columns become category codes from the training file's values ('?' is a value
    of its own; a value the training file lacks is NaN, HGB's missing)."""
    import numpy as np

    train, test = read_adult(ADULT / "adult.data"), read_adult(ADULT / "adult.test")
    categorical = {ADULT_COLUMNS.index(c) for c in ADULT_CATEGORICAL}
    codes = {j: {v: i for i, v in enumerate(sorted({r[j] for r in train}))} for j in categorical}

    def encode(rows: list[list[str]]):
        x = np.empty((len(rows), len(ADULT_COLUMNS) - 1), dtype=np.float64)
        for j in range(x.shape[1]):
            if j in categorical:
                x[:, j] = [codes[j].get(r[j], np.nan) for r in rows]
            else:
                x[:, j] = [float(r[j]) for r in rows]
        y = np.array([r[-1].rstrip(".") == ">50K" for r in rows], dtype=np.int64)
        return x, y

    x, y = encode(train)
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[: min(train_rows, len(x))])
    xv, yv = encode(test)
    return {
        "x": x[pick],
        "y": y[pick],
        "xv": xv,
        "yv": yv,
        "categorical": [j in categorical for j in range(x.shape[1])],
        "train_file_rows": len(train),
    }


def adult_space():
    from forgeline.registry import SearchParameter

    return (
        SearchParameter("learning_rate", "loguniform", 0.01, 0.5),
        SearchParameter("max_leaf_nodes", "integer", 4, 256, log=True),
        SearchParameter("min_samples_leaf", "integer", 1, 300, log=True),
        SearchParameter("max_features", "uniform", 0.2, 1.0),
        # >= 42: native-country has 42 categories, and HGB needs a bin for each
        SearchParameter("max_bins", "choice", values=(63, 127, 255)),
    )


def fit_score(config: dict, data: dict, max_iter: int) -> float:
    """Validation log-loss of one HistGradientBoostingClassifier."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    model = HistGradientBoostingClassifier(
        learning_rate=float(config["learning_rate"]),
        max_leaf_nodes=int(config["max_leaf_nodes"]),
        min_samples_leaf=int(config["min_samples_leaf"]),
        max_features=float(config["max_features"]),
        max_bins=int(config["max_bins"]),
        max_iter=max_iter,
        early_stopping=False,
        categorical_features=data["categorical"],
        random_state=0,
    )
    model.fit(data["x"], data["y"])
    return float(log_loss(data["yv"], model.predict_proba(data["xv"])[:, 1]))


def adult_trial(config: dict, *, data: dict, max_iter: int) -> None:
    """The Tune trainable: one fit, one report."""
    import sklearn.ensemble  # noqa: F401 - a fresh trial actor imports it outside the clock
    import sklearn.metrics  # noqa: F401
    from ray import tune

    started = time.time()
    score = fit_score(config, data, max_iter)
    tune.report({OBJECTIVE: score, "started": started, "fit_s": time.time() - started})


def run_search(searcher: str, seed: int, data, args, storage: Path) -> dict:
    """One search with the forgeline searcher plugin ``searcher``; every trial's log-loss in the
    order the trials started."""
    from ray import tune

    from forgeline.registry import Objective, PluginRegistry, SearchContext

    plugin = PluginRegistry().create("searchers", searcher, {}, "searcher")
    ctx = SearchContext(
        adult_space(), (Objective(OBJECTIVE, "min"),), args.trials, args.concurrency, seed
    )
    plugin.check(ctx)
    plan = plugin.build(ctx)
    trainable = tune.with_resources(
        tune.with_parameters(adult_trial, data=data, max_iter=args.max_iter),
        {"cpu": args.cpus // args.concurrency},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            search_alg=plan.search_alg,
            num_samples=plan.num_samples,  # the plugin's search algorithm limits the concurrency
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name=f"{searcher}-{seed}", storage_path=str(storage), verbose=0),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    done = []
    for result in grid:
        if result.error is not None:
            raise RuntimeError(f"{searcher} seed {seed}: a trial failed: {result.error}")
        done.append(result.metrics)
    done.sort(key=lambda m: m["started"])
    if len(done) != args.trials:
        raise RuntimeError(f"{searcher} seed {seed}: {len(done)} trials, not {args.trials}")
    return {
        "values": [m[OBJECTIVE] for m in done],
        "fit_s": [m["fit_s"] for m in done],
        "wall_s": wall,
    }


def part_a(args, log) -> tuple[dict, dict]:
    import threadpoolctl

    data = load_adult(args.train_rows, args.data_seed)
    log(
        f"A: adult {len(data['y'])} train rows (of {data['train_file_rows']}), "
        f"{len(data['yv'])} validation rows"
    )
    middle = {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20}
    probe_cfg = {**middle, "max_features": 1.0, "max_bins": 255}
    with threadpoolctl.threadpool_limits(args.cpus // args.concurrency):
        fit_score(probe_cfg, data, args.max_iter)  # warm-up
        start = time.perf_counter()
        probe_score = fit_score(probe_cfg, data, args.max_iter)
        probe_s = time.perf_counter() - start
    searches = 2 * args.seeds
    log(
        f"A: one fit at sklearn's defaults: {probe_s:.2f}s (log-loss {probe_score:.4f}); "
        f"{searches} searches x {args.trials} trials to run"
    )
    per_seed = []
    wait_quiet(args.quiet_wait, log)
    load = ForeignLoad()
    with tempfile.TemporaryDirectory(prefix="forgeline-bench-tuning-a-") as storage:
        for seed in range(args.seeds):
            order = SEARCHERS if seed % 2 == 0 else SEARCHERS[::-1]
            got = {}
            for label, plugin in order:
                got[label] = run_search(plugin, seed, data, args, Path(storage))
            row = {"seed": seed, "first": order[0][0]}
            for label, _ in SEARCHERS:
                row[f"{label}_best"] = min(got[label]["values"])
                row[f"{label}_values"] = got[label]["values"]
                row[f"{label}_fit_s"] = got[label]["fit_s"]
                row[f"{label}_wall_s"] = got[label]["wall_s"]
            per_seed.append(row)
            better = "tpe" if row["tpe_best"] < row["random_best"] else "random"
            log(
                f"A: seed {seed}: best log-loss tpe {row['tpe_best']:.5f}, random "
                f"{row['random_best']:.5f} ({better} better); searches took "
                f"{row['tpe_wall_s']:.0f}s (tpe) and {row['random_wall_s']:.0f}s (random)"
            )
    share = load.share()
    n = len(per_seed)
    wins = sum(r["tpe_best"] < r["random_best"] for r in per_seed)
    # one-sided sign test: P(at least `wins` of n) if either searcher were as likely to win
    p_value = sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n
    curves = {}
    for label, _ in SEARCHERS:
        curves[label] = [
            statistics.fmean(min(r[f"{label}_values"][: k + 1]) for r in per_seed)
            for k in range(args.trials)
        ]
    fits = [t for r in per_seed for label, _ in SEARCHERS for t in r[f"{label}_fit_s"]]
    walls = [r[f"{label}_wall_s"] for r in per_seed for label, _ in SEARCHERS]
    half = max(1, args.trials // 2)
    metrics = {
        "a_trials_per_search": args.trials,
        "a_seeds": n,
        "a_concurrency": args.concurrency,
        "a_cpus_per_trial": args.cpus // args.concurrency,
        "a_train_rows": len(data["y"]),
        "a_validation_rows": len(data["yv"]),
        "a_boosting_rounds": args.max_iter,
        "tpe_beats_random_share": wins / n,
        "a_tpe_wins": wins,
        "a_sign_test_p_value": p_value,
        "a_tpe_best_logloss_mean": statistics.fmean(r["tpe_best"] for r in per_seed),
        "a_random_best_logloss_mean": statistics.fmean(r["random_best"] for r in per_seed),
        "a_tpe_best_logloss_median": statistics.median(r["tpe_best"] for r in per_seed),
        "a_random_best_logloss_median": statistics.median(r["random_best"] for r in per_seed),
        "a_best_logloss_any_trial": min(min(r["tpe_best"], r["random_best"]) for r in per_seed),
        f"a_tpe_best_after_{half}_trials_mean": curves["tpe"][half - 1],
        f"a_random_best_after_{half}_trials_mean": curves["random"][half - 1],
        "a_tpe_beats_random_after_half_share": sum(
            min(r["tpe_values"][:half]) < min(r["random_values"][:half]) for r in per_seed
        )
        / n,
        "a_tpe_trial_logloss_mean": statistics.fmean(v for r in per_seed for v in r["tpe_values"]),
        "a_random_trial_logloss_mean": statistics.fmean(
            v for r in per_seed for v in r["random_values"]
        ),
        "a_default_params_logloss": probe_score,
        "a_default_params_fit_s": probe_s,
        "a_trial_fit_s_mean": statistics.fmean(fits),
        "a_search_wall_s_mean": statistics.fmean(walls),
        "a_tune_overhead_per_trial_s": statistics.fmean(walls) / args.trials
        - statistics.fmean(fits),
        "a_foreign_cpu_share": share,
    }
    details = {
        "objective": "validation log-loss of HistGradientBoostingClassifier (minimise)",
        "space": [
            {
                "name": p.name,
                "distribution": p.distribution,
                **({"values": list(p.values)} if p.values else {"low": p.low, "high": p.high}),
                **({"log": True} if p.log else {}),
            }
            for p in adult_space()
        ],
        "searchers": {"tpe": "optuna (default config)", "random": "random"},
        "best_so_far_mean": curves,
        "per_seed": per_seed,
    }
    return metrics, details


# --- B: the tuning service's overhead against plain runs ----------------------------------------


def tune_request(train_id: str, eval_id: str, args, seed: int):
    from google.protobuf import struct_pb2

    from forgeline.convert import struct
    from forgeline.v1 import training_service_pb2 as tpb
    from forgeline.v1 import tuning_service_pb2 as pb

    return pb.TuneModelRequest(
        training=tpb.TrainModelRequest(
            train=common_pb2.DatasetInput(dataset_id=train_id),
            eval=common_pb2.DatasetInput(dataset_id=eval_id),
            model=tpb.ModelSource(builtin="minilm-l6"),
            task=tpb.TASK_SEQUENCE_CLASSIFICATION,
            finetune=common_pb2.PluginSpec(name="lora", config=struct({"r": 8})),
            hyper_parameters=common_pb2.HyperParameters(
                learning_rate=1e-3,  # searched
                batch_size_per_worker=args.batch,
                epochs=args.epochs,
                max_sequence_length=args.seq_len,
                seed=0,
            ),
        ),
        search_space=[
            pb.SearchParameter(
                name="hyper_parameters.learning_rate",
                loguniform=pb.FloatRange(low=1e-4, high=3e-3),
            ),
            pb.SearchParameter(
                name="finetune.config.r",
                choice=pb.ChoiceValues(
                    values=[struct_pb2.Value(number_value=v) for v in (4, 8, 16)]
                ),
            ),
        ],
        num_trials=args.tune_trials,
        max_concurrent_trials=1,
        resources_per_trial=pb.TrialResources(cpus=args.cpus),
        searcher=common_pb2.PluginSpec(name="optuna"),
        scheduler=common_pb2.PluginSpec(name="fifo"),
        seed=seed,
    )


def plain_configs(settings, request, response, out: Path) -> list[dict]:
    """Each trial's RecipeConfig as TuningJobs.run_tune and search.run_trial build it: the
    service's planner on the same request, finetune.runner.recipe_config, checkpoint_every = 0,
    then the trial's sampled parameters (from the response) applied with recipe_updates."""
    from google.protobuf import json_format

    from forgeline.artifacts import ArtifactStore
    from forgeline.datasets import DatasetRepository
    from forgeline.finetune.recipe import RecipeConfig
    from forgeline.finetune.runner import recipe_config
    from forgeline.paths import PathValidator
    from forgeline.registry import PluginRegistry
    from forgeline.services.tuning.jobs import TuningJobs
    from forgeline.services.tuning.planning import recipe_updates
    from forgeline.services.tuning.servicer import tune_spec

    artifacts = ArtifactStore(settings.artifacts_dir)
    jobs = TuningJobs(
        PluginRegistry(
            allow=settings.plugins_allow,
            required=settings.plugins_required,
            autoload=settings.plugins_autoload,
        ),
        DatasetRepository(artifacts),
        artifacts,
        PathValidator.from_settings(settings),
        settings,
    )
    plan = jobs.plan(tune_spec(request))
    if plan.train.model.path is None:
        raise RuntimeError("the builtin model has no local path")
    base = recipe_config(plan.train, artifacts, plan.train.model.path, out).model_dump()
    base["checkpoint_every"] = 0  # as run_tune: one report per epoch
    configs = []
    for trial in sorted(response.trials, key=lambda t: t.number):
        params = json_format.MessageToDict(trial.parameters)
        updates = recipe_updates(base["finetune_config"], params)
        output = out / f"trial-{trial.number}"
        config = RecipeConfig.model_validate({**base, **updates, "output_dir": str(output)})
        configs.append(config.model_dump())
    return configs


def run_tuning(client, request) -> dict:
    """TuneModel, waited for; wall time from the call to the response in hand, and the event
    times (the service's clock, this machine's) of every trial's start and end."""
    from forgeline.v1 import tuning_service_pb2 as pb

    began = time.time()
    start = time.perf_counter()
    op = client.tuning.TuneModel(request)
    response = client.wait(op, pb.TuneModelResponse, timeout=7200)
    wall = time.perf_counter() - start
    ended = time.time()
    starts, ends = {}, {}
    for event in client.stream_events(op.name, follow=False):
        if not event.HasField("progress"):
            continue
        message, when = event.progress.message, event.time.ToNanoseconds() / 1e9
        if message.startswith("trial ") and " started: " in message:
            starts[int(message.split()[1].split("/")[0])] = when
        elif message.startswith("trial ") and (" finished: " in message or " failed" in message):
            ends[int(message.split()[1])] = when
    return {
        "response": response,
        "wall_s": wall,
        "began": began,
        "ended": ended,
        "starts": starts,
        "ends": ends,
    }


def run_plain(configs: list[dict], cpus: int) -> dict:
    """The plain runs in a child process of their own (see child_plain)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(cpus),
        "MKL_NUM_THREADS": str(cpus),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"configs": configs, "cpus": cpus}, fh)
        path = fh.name
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child-plain", path],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        process_s = time.perf_counter() - start
    finally:
        os.unlink(path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"plain runs failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["process_s"] = process_s
    return result


def child_plain(path: str) -> dict:
    """Runs every config with run_recipe, one after another, in this process."""
    start = time.perf_counter()
    spec = json.loads(Path(path).read_text())
    import peft  # noqa: F401 - imported before the clock starts, as a reused trial actor has
    import safetensors.torch  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from forgeline.finetune.recipe import RecipeConfig, run_recipe
    from forgeline.finetune.sessions import LocalSession
    from forgeline.registry import PluginRegistry

    torch.set_num_threads(spec["cpus"])
    PluginRegistry().get("finetune", "lora")
    imports_s = time.perf_counter() - start

    runs = []
    for raw in spec["configs"]:
        session = LocalSession()
        config = RecipeConfig.model_validate(raw)
        begin = time.perf_counter()
        run_recipe(config, session)
        last = session.reports[-1] if session.reports else {}
        runs.append({"seconds": time.perf_counter() - begin, "metrics": last})
    return {"runs": runs, "imports_s": imports_s, "threads": torch.get_num_threads()}


def part_b(args, log) -> tuple[dict, dict, list[str], dict, list[dict]]:
    import pyarrow as pa
    from google.protobuf import json_format

    from forgeline.artifacts import ArtifactStore, Lineage
    from forgeline.client import Client
    from forgeline.datasets import DatasetRepository
    from forgeline.server import ServiceThread
    from forgeline.settings import Settings

    train, held_out = load_sentences(args.data_seed, args.eval_rows)
    log(f"B: {len(train['text'])} train / {len(held_out['text'])} eval sentences")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="forgeline-bench-tuning-b-") as tmp:
        tmp = Path(tmp)
        home, root = tmp / "home", tmp / "data"
        root.mkdir()
        settings = Settings(home=home, data_roots=[root], grace_seconds=1.0, log_level="WARNING")
        service = ServiceThread("tuning", settings).start()
        try:
            datasets = DatasetRepository(ArtifactStore(home / "artifacts"))
            train_id, eval_id = (
                datasets.save(
                    pa.table(rows),
                    name=name,
                    text_column="text",
                    label_column="label",
                    lineage=Lineage(),
                ).id
                for rows, name in ((train, "uci-train"), (held_out, "uci-eval"))
            )
            with Client(f"127.0.0.1:{service.port}") as client:
                client.wait_ready()
                seeds = iter(range(args.repeats))
                tuned: dict = {}  # this repetition's TuneModel: the plain runs redo its trials

                def tune() -> dict:
                    request = tune_request(train_id, eval_id, args, seed=next(seeds))
                    tuned.update(run_tuning(client, request), request=request)
                    response = tuned["response"]
                    log(f"B: TuneModel: {len(response.trials)} trials in {tuned['wall_s']:.1f}s")
                    return dict(tuned)

                def plain() -> dict:
                    folder = tmp / f"plain-{tuned['request'].seed}"
                    configs = plain_configs(settings, tuned["request"], tuned["response"], folder)
                    done = run_plain(configs, args.cpus)
                    total = sum(r["seconds"] for r in done["runs"])
                    log(f"B: plain runs: {total:.1f}s of run_recipe")
                    return done

                rounds = interleave(
                    {"tune": tune, "plain": plain},
                    args.repeats,
                    quiet_wait=args.quiet_wait,
                    log=log,
                )
        finally:
            service.stop()

    per_repetition = [
        overhead_metrics(runs["tune"], runs["plain"], args) for runs in rounds.results
    ]
    if any(len(one) != len(per_repetition[0]) for one in per_repetition):
        notes.append("B: some trial start/end events were missing; no head/gap/tail split there")
    metrics, spread = fold(per_repetition)
    metrics.update(
        {
            "b_epochs": args.epochs,
            "b_batch": args.batch,
            "b_max_seq_len": args.seq_len,
            "b_cpus_per_trial": args.cpus,
            "b_train_rows": len(train["text"]),
            "b_eval_rows": len(held_out["text"]),
        }
    )
    last = rounds.results[-1]
    request, response, runs = (
        last["tune"]["request"],
        last["tune"]["response"],
        last["plain"]["runs"],
    )
    trials = sorted(response.trials, key=lambda t: t.number)
    details = {
        "request": json_format.MessageToDict(request),
        "trials": [  # of the last repetition
            {
                "number": t.number,
                "parameters": json_format.MessageToDict(t.parameters),
                "service_seconds": t.seconds,
                "plain_seconds": r["seconds"],
                "tune_eval_loss": t.metrics["eval_loss"],
                "plain_eval_loss": r["metrics"].get("eval_loss"),
                "tune_eval_accuracy": t.metrics["eval_accuracy"],
                "plain_eval_accuracy": r["metrics"].get("eval_accuracy"),
                "samples_per_second_tune": t.metrics.get("samples_per_second"),
                "samples_per_second_plain": r["metrics"].get("samples_per_second"),
            }
            for t, r in zip(trials, runs, strict=True)
        ],
    }
    return metrics, details, notes, spread, rounds.foreign


def overhead_metrics(tuned: dict, plain: dict, args) -> dict[str, float]:
    """One repetition of part B: the TuneModel call against the plain runs of its trials."""
    from forgeline.v1 import tuning_service_pb2 as pb

    response = tuned["response"]
    trials = sorted(response.trials, key=lambda t: t.number)
    n = len(trials)
    if any(t.state != pb.TRIAL_STATE_COMPLETED for t in trials):
        states = [pb.TrialState.Name(t.state) for t in trials]
        raise RuntimeError(f"B: not every trial completed: {states}")
    runs = plain["runs"]
    plain_s = [r["seconds"] for r in runs]
    total = sum(plain_s)
    wall = tuned["wall_s"]
    starts, ends = tuned["starts"], tuned["ends"]
    numbers = [t.number for t in trials]
    loss_diff = [
        abs(t.metrics["eval_loss"] - r["metrics"]["eval_loss"])
        for t, r in zip(trials, runs, strict=True)
    ]
    acc_diff = [
        abs(t.metrics["eval_accuracy"] - r["metrics"]["eval_accuracy"])
        for t, r in zip(trials, runs, strict=True)
    ]
    metrics: dict[str, float] = {
        "b_trials": n,
        "b_tune_wall_s": wall,
        "b_service_seconds": response.seconds,
        "b_plain_total_s": total,
        "tuning_overhead_share": (wall - total) / total,
        "b_overhead_per_trial_s": (wall - total) / n,
        "b_plain_run_s_mean": statistics.fmean(plain_s),
        "b_service_trial_s_mean": statistics.fmean(t.seconds for t in trials),
        "b_trial_minus_plain_s_mean": statistics.fmean(
            t.seconds - p for t, p in zip(trials, plain_s, strict=True)
        ),
        "b_trial_samples_per_s_mean": statistics.fmean(
            t.metrics["samples_per_second"] for t in trials
        ),
        "b_plain_samples_per_s_mean": statistics.fmean(
            r["metrics"]["samples_per_second"] for r in runs
        ),
        "b_plain_imports_s": plain["imports_s"],
        "b_plain_torch_threads": plain["threads"],
        "b_eval_loss_max_abs_diff": max(loss_diff),
        "b_eval_accuracy_max_abs_diff": max(acc_diff),
    }
    if all(k in starts and k in ends for k in numbers):
        gaps = [starts[b] - ends[a] for a, b in zip(numbers, numbers[1:], strict=False)]
        metrics.update(
            {
                "b_head_s": starts[numbers[0]] - tuned["began"],  # call -> first trial's start
                "b_gaps_between_trials_s": sum(gaps),
                "b_tail_s": tuned["ended"] - ends[numbers[-1]],  # last end -> response in hand
                "b_trial_event_s_sum": sum(ends[k] - starts[k] for k in numbers),
            }
        )
    return metrics


# --- the report ---------------------------------------------------------------------------------


def machine() -> dict:
    import optuna
    import ray
    import sklearn

    versions = {
        "ray": ray.__version__,
        "optuna": optuna.__version__,
        "sklearn": sklearn.__version__,
    }
    try:
        import peft
        import torch
        import transformers

        versions.update(
            torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__
        )
    except ImportError:
        pass
    return _common.machine(**versions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="A: trials per search")
    parser.add_argument("--seeds", type=int, default=20, help="A: seeds (searches per searcher)")
    parser.add_argument("--concurrency", type=int, default=1, help="A: trials at once")
    parser.add_argument("--train-rows", type=int, default=10000, help="A: adult.data rows fitted")
    parser.add_argument("--max-iter", type=int, default=100, help="A: boosting rounds")
    parser.add_argument("--tune-trials", type=int, default=4, help="B: TuneModel trials")
    parser.add_argument("--epochs", type=int, default=1, help="B: epochs per trial")
    parser.add_argument("--batch", type=int, default=16, help="B: batch size")
    parser.add_argument("--seq-len", type=int, default=64, help="B: max sequence length")
    parser.add_argument("--eval-rows", type=int, default=300, help="B: held-out sentences")
    parser.add_argument("--cpus", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--data-seed", type=int, default=0, help="row samples and splits")
    parser.add_argument("--parts", default="ab", help="which parts to run: a, b or ab")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before part A and each part B measurement, wait up to this many seconds for "
        "other processes to go quiet",
    )
    bench_options(parser)
    parser.add_argument("--child-plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_plain:
        import warnings

        warnings.filterwarnings("ignore")
        print("RESULT " + json.dumps(child_plain(args.child_plain)), flush=True)
        return 0
    if args.concurrency < 1 or args.cpus % args.concurrency or args.trials < 1 or args.seeds < 1:
        parser.error("--concurrency must divide --cpus; --trials and --seeds >= 1")
    parts = set(args.parts.lower())
    if not parts or parts - {"a", "b"}:
        parser.error("--parts: a, b or ab")

    missing = [p for p in (ADULT / "adult.data", ADULT / "adult.test") if not p.is_file()]
    missing += [p for p in SENTENCE_FILES if not p.is_file()]
    if missing:
        print(
            "tuning benchmark skipped: it needs the shared real data, and "
            + ", ".join(str(p) for p in missing)
            + " is missing (../shared/data, relative to the repository root); nothing written"
        )
        return 0

    started = time.perf_counter()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import ray

    from forgeline.logging import configure

    configure(json=True, level="WARNING")  # the CLI does this for `forgeline serve`

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    start_ray(args.cpus)
    log(f"ray up ({args.cpus} CPUs)")
    metrics: dict[str, float] = {}
    details: dict[str, dict] = {}
    notes: list[str] = []
    goals: list[dict] = []
    spread: dict[str, dict] = {}
    foreign: list[dict[str, float]] = []
    try:
        if "a" in parts:
            a_metrics, details["a"] = part_a(args, log)
            metrics.update(a_metrics)
            foreign.append({"a": a_metrics["a_foreign_cpu_share"]})
            goals.append({"metric": "tpe_beats_random_share", "op": ">=", "target": 0.7})
        if "b" in parts:
            b_metrics, details["b"], b_notes, spread, b_foreign = part_b(args, log)
            metrics.update(b_metrics)
            notes += b_notes
            foreign += b_foreign
            goals.append({"metric": "tuning_overhead_share", "op": "<=", "target": 0.10})
    finally:
        ray.shutdown()
    metrics["benchmark_wall_s"] = time.perf_counter() - started

    if "a" in parts:
        notes.append(
            "A: searchers = forgeline's optuna (TPE, default config) and random plugins, built "
            "from a SearchContext into a SearchPlan and run by ray.tune.Tuner; same trials, "
            "concurrency, CPUs per trial and seed for both; first searcher alternates per seed"
        )
    if "b" in parts:
        notes.append(
            "B: overhead = TuneModel wall (call -> response) - sum of plain run_recipe times, "
            "same RecipeConfigs (built by the service's own planner, trial parameters from the "
            "response); it covers planning, Tune and trial-actor start (imports), Tune's loop "
            "and callbacks, checkpoint copies into the experiment, importances, committing the "
            "best model, and the client noticing the end; model loading per trial is in both"
        )
    report = results(
        "tuning",
        machine(),
        metrics,
        goals,
        repeats=args.repeats,
        spread=spread,
        noise=noise(foreign),
        notes=notes,
        details=details,
    )
    path = write_results(report, args.out)

    print()
    if "a" in parts:
        print(
            f"A: best validation log-loss after {args.trials} trials "
            f"(HGB on UCI Adult, concurrency {args.concurrency})"
        )
        print(f"{'seed':>6}{'TPE':>12}{'random':>12}  better")
        for r in details["a"]["per_seed"]:
            better = "TPE" if r["tpe_best"] < r["random_best"] else "random"
            print(f"{r['seed']:>6}{r['tpe_best']:>12.5f}{r['random_best']:>12.5f}  {better}")
        print(
            f"{'mean':>6}{metrics['a_tpe_best_logloss_mean']:>12.5f}"
            f"{metrics['a_random_best_logloss_mean']:>12.5f}  "
            f"TPE better on {metrics['a_tpe_wins']}/{metrics['a_seeds']} seeds "
            f"(sign test p = {metrics['a_sign_test_p_value']:.3f})"
        )
        print()
    if "b" in parts:
        print(
            f"B: {metrics['b_trials']} MiniLM LoRA trainings ({args.epochs} epoch, "
            f"{metrics['b_train_rows']} rows): TuneModel vs plain run_recipe"
        )
        print(f"{'trial':>6}{'params':>34}{'service s':>11}{'plain s':>9}{'eval_loss diff':>16}")
        for t in details["b"]["trials"]:
            p = t["parameters"]
            params = f"lr={p['hyper_parameters.learning_rate']:.2e} r={p['finetune.config.r']:g}"
            diff = abs(t["tune_eval_loss"] - (t["plain_eval_loss"] or float("nan")))
            print(
                f"{t['number']:>6}{params:>34}{t['service_seconds']:>11.1f}"
                f"{t['plain_seconds']:>9.1f}{diff:>16.2e}"
            )
        print()
    shown = [
        "a_trial_fit_s_mean",
        "a_search_wall_s_mean",
        "a_tune_overhead_per_trial_s",
        "a_tpe_beats_random_after_half_share",
        "b_tune_wall_s",
        "b_service_seconds",
        "b_plain_total_s",
        "tuning_overhead_share",
        "b_overhead_per_trial_s",
        "b_service_trial_s_mean",
        "b_plain_run_s_mean",
        "b_trial_minus_plain_s_mean",
        "b_trial_samples_per_s_mean",
        "b_plain_samples_per_s_mean",
        "b_head_s",
        "b_gaps_between_trials_s",
        "b_tail_s",
        "b_plain_imports_s",
        "benchmark_wall_s",
    ]
    print_summary(report, shown, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
