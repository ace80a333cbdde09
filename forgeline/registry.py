"""Plugins: the base class, the contract of each kind, and the two-phase entry-point registry.

(This module is forgeline.registry, not forgeline.plugins: that name is the built-in plugins
folder, plugins/ = forgeline.plugins, per the layout rule.)

A plugin is a class with a short lowercase ``name``, a pydantic ``Config`` (extra="forbid", every
field described, so its JSON Schema documents it) and the one verb method of its kind. The only
registration is an entry point in the group ``forgeline.<kind>``; forgeline's own plugins are
declared the same way, so a third-party plugin is a peer.

Loading has two phases (as in flake8 and pytest): ``discover`` lists entry points without
importing anything; ``load`` imports on first use, checks the contract and rejects duplicates. A
plugin that fails to import is logged with its package and skipped unless settings require it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from forgeline.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Violations,
)
from forgeline.logging import get_logger
from forgeline.paths import PathValidator

if TYPE_CHECKING:
    import pyarrow as pa

    from forgeline.parsecheck import DataWarning

GROUP_PREFIX = "forgeline."
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
log = get_logger(__name__)


class PluginConfig(BaseModel):
    """Base of every plugin Config: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """Base of every plugin. Subclass a kind below, never this directly."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def contract_config(cls) -> dict[str, Any] | None:
        """A config the contract suites use when the defaults cannot run (None: defaults)."""
        return None

    @classmethod
    def description(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


# --- loaders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSource:
    """What a loader reads. ``path`` lies inside the configured roots, as found there (a file in
    a folder keeps its own name): open ``inside_roots(path)``, not ``path``."""

    path: Path | None = None
    url: str | None = None
    # Refuse inputs beyond these limits (ResourceExhausted).
    max_rows: int = 50_000_000
    max_bytes: int = 20 * 1024**3
    # The operator's FORGELINE_HTTP_ALLOW: the only non-public hosts a URL loader may reach
    # (forgeline.outbound refuses loopback, link-local, private... addresses by default).
    http_allow: tuple[str, ...] = ()
    # The service's path validator. A loader resolves every file it opens through
    # ``inside_roots`` (the shards a manifest names too), so a symlink cannot lead out.
    paths: PathValidator | None = None

    def inside_roots(self, path: Path, *, named_in: Path | None = None) -> Path:
        """The real path of a file the loader is about to open (``named_in``: the manifest that
        named it); PermissionDenied where it lands outside the data roots. Without a validator
        (a loader used outside a service), the source's own folder is the only root."""
        paths = self.paths
        if paths is None:
            paths = PathValidator([self.path if self.path.is_dir() else self.path.parent])
        return paths.contain(path, "source", named_in=named_in)

    def file_size(self) -> int:
        """The size of ``path``; ResourceExhausted when it is over ``max_bytes``."""
        size = self.path.stat().st_size
        if size > self.max_bytes:
            raise ResourceExhausted(
                f"{self.path}: {size} bytes is over the limit of {self.max_bytes} bytes",
                reason="TOO_MANY_BYTES",
            )
        return size


class Loader(Plugin, ABC):
    """Turns a source into an Arrow table. Raise InvalidArgument naming the line for bad rows."""

    kind = "loaders"
    # File extensions (lowercase, with dot) this loader is chosen for when none is named.
    extensions: ClassVar[tuple[str, ...]] = ()
    # True for loaders whose source is a URL (or a file listing URLs) instead of a data file.
    reads_urls: ClassVar[bool] = False

    @classmethod
    def detects(cls, path: Path) -> bool:
        """Whether this loader recognises ``path`` (a folder layout, say) beyond its extension."""
        return path.is_file() and path.suffix.lower() in cls.extensions

    @abstractmethod
    def load(self, source: LoadSource) -> pa.Table: ...

    def check_parse(self, source: LoadSource, table: pa.Table) -> list[DataWarning]:
        """What looks wrong about ``table`` as a reading of ``source`` that only the loader can
        tell (e.g. fewer rows than the file has lines); called once per source after ``load``.
        The service adds the checks that need only the table. The default finds nothing."""
        return []


# --- cleaners ----------------------------------------------------------------------------------


def _never_cancelled() -> None:
    return None


@dataclass(frozen=True)
class CleanContext:
    """Which columns hold the text and the label ("" when none), and the seed for sampling.

    Long cleaners call ``check_cancelled()`` now and then; it raises when the operation was
    cancelled or the service is stopping.
    """

    text_column: str = "text"
    label_column: str = ""
    seed: int = 0
    check_cancelled: Callable[[], None] = _never_cancelled
    # For cleaners that run another kind's plugins (safety_filter runs an input filter): the
    # service's registry (its allow-list applies) and model lookup. None outside a service.
    registry: PluginRegistry | None = None
    safety: SafetyContext | None = None
    # The other datasets the cleaner named (Cleaner.references), by the reference it gave.
    datasets: Mapping[str, ReferencedDataset] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferencedDataset:
    """Another dataset a cleaner reads (to compare against): its resolved id, rows and columns."""

    id: str
    table: pa.Table
    text_column: str
    label_column: str


@dataclass
class CleanResult:
    """A cleaner's output: the new table, a few examples of dropped or changed rows, numbers."""

    table: pa.Table
    # (text, reason) pairs, at most a handful.
    examples: list[tuple[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Cleaner(Plugin, ABC):
    """Maps an Arrow table to an Arrow table (fewer rows, changed text, or more rows)."""

    kind = "cleaners"
    MAX_EXAMPLES: ClassVar[int] = 5

    def references(self) -> dict[str, str]:
        """Other datasets this cleaner reads, as {config field: dataset id, name or
        name@version}. The service checks each exists before the operation starts (an error
        names the field), records them in the result's lineage and hands them over in
        ``CleanContext.datasets``. The default reads none."""
        return {}

    @abstractmethod
    def clean(self, table: pa.Table, ctx: CleanContext) -> CleanResult: ...


# --- augmenters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentContext:
    """The text and label columns, the seed, and the cancellation check (see CleanContext)."""

    text_column: str = "text"
    label_column: str = ""
    seed: int = 0
    check_cancelled: Callable[[], None] = _never_cancelled


class Augmenter(Plugin, ABC):
    """Generates new rows from a table; returns only the new rows, with the input's schema."""

    kind = "augmenters"

    @abstractmethod
    def augment(self, table: pa.Table, ctx: AugmentContext) -> pa.Table: ...


# --- finetune strategies -----------------------------------------------------------------------

TASKS = ("sequence_classification", "causal_lm", "seq2seq")


@dataclass(frozen=True)
class FinetuneContext:
    """What a strategy may need beside the model: the task and where the model came from."""

    task: str = "sequence_classification"  # one of TASKS
    # Local folder of the pretrained model and its tokenizer ("" for a model built from config).
    model_path: str = ""
    tokenizer_path: str = ""
    # Longest input in tokens the run will feed (0: unknown).
    max_length: int = 0


class FinetuneStrategy(Plugin, ABC):
    """Decides which weights of a model train: all of them, an adapter, or a learned prompt."""

    kind = "finetune"
    # True when the result is saved as a PEFT adapter folder (PeftModel.from_pretrained loads it);
    # False for a full save_pretrained folder.
    produces_adapter: ClassVar[bool] = False
    # The learning rate used when a request leaves it unset (adapters want larger ones).
    default_learning_rate: ClassVar[float] = 5e-5

    def check(self, model: Any, ctx: FinetuneContext) -> None:
        """Refuses a model this strategy cannot apply to (InvalidArgument naming the config
        field), before any worker starts. The default accepts every model."""

    @abstractmethod
    def prepare(self, model: Any, ctx: FinetuneContext) -> Any:
        """The module to train: ``model`` itself with some weights frozen, or a PEFT wrapper."""


# --- trackers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackerRun:
    """One training run as a tracker sees it."""

    run_id: str  # the operation name, unique per run
    name: str  # a readable name (the output model's name)
    # A folder only this run's tracker writes into (file stores: TensorBoard logs, MLflow runs).
    output_dir: Path
    # The hyper-parameters and strategy config, flattened to "a.b" keys.
    params: Mapping[str, Any] = field(default_factory=dict)
    # Where to write instead of output_dir (a tracking server's URI, say): only the operator
    # names it (FORGELINE_TRACKER_DESTINATIONS), never a client's config. Empty: output_dir.
    destination: str = ""


class Tracker(Plugin, ABC):
    """Mirrors a run's metrics into an experiment tracker. The service calls ``start`` once,
    ``log_metrics`` for every metric point in step order, then ``finish`` exactly once (also
    when the run fails or is cancelled). A tracker must never fail the training: the service
    logs and drops a tracker that raises."""

    kind = "trackers"

    @abstractmethod
    def start(self, run: TrackerRun) -> None: ...

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    @abstractmethod
    def finish(self, status: str, summary: Mapping[str, float]) -> None:
        """``status``: "succeeded", "failed" or "cancelled"; ``summary``: the final metrics."""


# --- baselines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineContext:
    """What a baseline may need beside the rows.

        ``labels`` are the classes (sorted, as strings); every prediction is one of them.
        ``output_dir``, when set, is an existing empty folder: a baseline that can store its fitted
        model writes it there in a safe format (JSON, safetensors; never pickle or joblib) and says
        which in ``BaselineResult.model_format``. ``check_cancelled()`` is called between stages (at
    least once between fitting and predicting); it raises when the operation was cancelled.
    """

    labels: tuple[str, ...] = ()
    output_dir: Path | None = None
    check_cancelled: Callable[[], None] = _never_cancelled


@dataclass
class BaselineResult:
    """A baseline's predicted label for every eval text, and how long fitting took."""

    predictions: list[str]
    seconds: float
    # Non-empty: ctx.output_dir holds the fitted model in this format (e.g. "tfidf_logreg").
    model_format: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Baseline(Plugin, ABC):
    """A classical text classifier fitted beside the neural models on the same split. The
    service scores its predictions (accuracy, macro F1, confusion matrix), so every baseline is
    measured the same way as EvaluateModel measures a model."""

    kind = "baselines"

    @abstractmethod
    def fit_predict(
        self,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: BaselineContext,
    ) -> BaselineResult:
        """Fits on the training rows and predicts a label for each eval text."""

    def predict_saved(self, folder: Path, texts: list[str]) -> list[str]:
        """A label for each text from a model this baseline stored earlier in ``folder`` (its
        ``output_dir``, with the ``model_format`` it returned), without fitting again: how
        EvaluateModel scores a baseline artifact on another dataset. Rebuild it from the safe
        files it wrote; this instance's config may differ from the stored model's. A baseline
        that stores no model keeps this default."""
        raise NotImplementedError(f"{self.name} cannot predict from a stored model")


# --- searchers and schedulers (the tuning service) ----------------------------------------------

DISTRIBUTIONS = ("uniform", "loguniform", "integer", "choice")


@dataclass(frozen=True)
class SearchParameter:
    """One searched dimension: a training request field and the values it may take.

    ``distribution`` is one of DISTRIBUTIONS; ranges are [low, high] with both ends included
    (``log`` samples an integer range in log space); ``values`` are a choice's options.
    """

    name: str
    distribution: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    values: tuple[Any, ...] = ()

    def tune_domain(self) -> Any:
        """The Ray Tune sampling domain of this parameter."""
        from ray import tune

        if self.distribution == "uniform":
            return tune.uniform(self.low, self.high)
        if self.distribution == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.distribution == "integer":
            low, high = int(self.low), int(self.high) + 1  # Tune's upper end is exclusive
            return tune.lograndint(low, high) if self.log else tune.randint(low, high)
        return tune.choice(list(self.values))

    def optuna_distribution(self) -> Any:
        """The Optuna distribution of this parameter (choices that are not numbers, strings or
        booleans are compared by their text)."""
        import optuna

        d = optuna.distributions
        if self.distribution == "uniform":
            return d.FloatDistribution(self.low, self.high)
        if self.distribution == "loguniform":
            return d.FloatDistribution(self.low, self.high, log=True)
        if self.distribution == "integer":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.CategoricalDistribution([optuna_choice(v) for v in self.values])


def optuna_choice(value: Any) -> Any:
    """A choice value as Optuna can hold it: None, bool, int, float or str (else its JSON text)."""
    import json

    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Objective:
    """A metric the trials report after every epoch, and whether to "max"imize or "min"imize it."""

    metric: str
    mode: str


@dataclass(frozen=True)
class SearchContext:
    """What a searcher plans for. The first objective is the primary one; more than one asks
    for a multi-objective search. ``num_trials`` is 0 when the request left it to the searcher.
    The search algorithm must run at most ``max_concurrent`` trials at once (0: no limit)."""

    space: tuple[SearchParameter, ...]
    objectives: tuple[Objective, ...]
    num_trials: int
    max_concurrent: int
    seed: int


@dataclass
class SearchPlan:
    """How Ray Tune runs the search: its ``param_space`` (Tune domains by parameter name; empty
    when the search algorithm owns the space), the search algorithm (a ``ray.tune.search.Searcher``,
    or None for Tune's own random/grid generator over ``param_space``) and the trials to run."""

    param_space: dict[str, Any]
    search_alg: Any
    num_samples: int


class Searcher(Plugin, ABC):
    """Proposes each trial's parameter values for Ray Tune."""

    kind = "searchers"
    # True when it can optimise several objectives at once (and report a Pareto front).
    multi_objective: ClassVar[bool] = False

    def check(self, ctx: SearchContext) -> None:
        """Refuses a search this searcher cannot run (InvalidArgument naming the field, e.g.
        ``num_trials`` or ``searcher.config.<field>``), before any trial starts. The default
        accepts every search."""

    def trials(self, ctx: SearchContext) -> int:
        """How many trials the search will run."""
        return ctx.num_trials or 10

    @abstractmethod
    def build(self, ctx: SearchContext) -> SearchPlan:
        """The Tune search plan. Import Ray Tune (and its back-ends) inside this method."""


class Scheduler(Plugin, ABC):
    """Decides whether a running trial goes on after each epoch (early stopping)."""

    kind = "schedulers"

    @abstractmethod
    def build(self, objective: Objective, max_iterations: int) -> Any:
        """A ``ray.tune.schedulers.TrialScheduler`` judging ``objective``, reported once per
        epoch (Tune's ``training_iteration``); no trial reports more than ``max_iterations``
        times."""


# --- compressors (the compression service) ------------------------------------------------------


@dataclass(frozen=True)
class CompressionTarget:
    """What a compressor's ``check`` sees before any work starts: the format of the model it
    will receive (a ``forgeline.modelio`` format: "hf", "hf_pruned", "hf_int8", "onnx"), the
    original's Hugging Face config, the original's architecture built on the meta device (no
    weights), whether the request gave training rows, and the request field naming this step
    (e.g. "compressors[1]") for error messages."""

    format: str
    config: Mapping[str, Any]
    model: Any
    field: str
    has_train_rows: bool = False


@dataclass(frozen=True)
class TrainRun:
    """A training the service runs for a compressor with the training recipe on Ray Train:
    ``model_dir`` (an hf or hf_pruned folder) trains on the request's training rows, with
    ``teacher_dir``'s soft labels mixed into the loss when set (distillation), and the result is
    saved into ``output_dir``."""

    model_dir: Path
    output_dir: Path
    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 16
    teacher_dir: Path | None = None
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft-label loss; 1 - alpha weighs the hard labels
    num_workers: int = 1
    cpus_per_worker: float = 1.0


@dataclass(frozen=True)
class CompressContext:
    """What a compressor may use beside the model folder.

    ``labels`` are the classes in class-index order; ``train_rows(n)`` returns up to ``n``
    (texts, labels) of the request's training rows (empty lists when it gave none);
    ``train(run)`` runs the training recipe on Ray and returns its final metrics;
    ``work_dir`` is a scratch folder of this step; ``progress(fraction, message)`` reports
    progress within the step and ``check_cancelled()`` raises when the operation was cancelled.
    """

    task: str
    labels: tuple[str, ...]
    max_length: int
    seed: int
    work_dir: Path
    train_rows: Callable[[int], tuple[list[str], list[str]]] = lambda n: ([], [])
    train: Callable[[TrainRun], dict[str, float]] | None = None
    progress: Callable[[float, str], None] = lambda fraction, message: None
    check_cancelled: Callable[[], None] = _never_cancelled


@dataclass
class CompressResult:
    """What a compressor reports of its work (numbers, strings, lists), e.g. heads removed."""

    details: dict[str, Any] = field(default_factory=dict)


class Compressor(Plugin, ABC):
    """Maps a model folder to a smaller or faster model folder. The service measures both and
    keeps the result only while the accuracy budget holds."""

    kind = "compressors"
    # The modelio formats it takes as input.
    accepts: ClassVar[tuple[str, ...]] = ("hf", "hf_pruned")

    def output_format(self, input_format: str) -> str:
        """The modelio format of the folder it writes for an input of ``input_format``."""
        return input_format

    def check(self, target: CompressionTarget) -> None:
        """Refuses a model this compressor cannot apply to (FailedPrecondition, or
        InvalidArgument naming ``<target.field>.config.<field>``) before any step runs. The
        default accepts every model in ``accepts``."""

    @abstractmethod
    def compress(self, model_dir: Path, output_dir: Path, ctx: CompressContext) -> CompressResult:
        """Writes the compressed model into the existing empty ``output_dir`` (weights as
        safetensors or ONNX only, never a pickle; forgeline.modelio saves each format). The
        service adds the tokenizer and the labels afterwards."""


# --- samplers (the memory service) -------------------------------------------------------------


@dataclass(frozen=True)
class ReplayPool:
    """The samples a replay sampler chooses from, in the order they were added: their labels,
    their embeddings (a float32 numpy array, one row per sample, L2-normalized) and when they
    were added (seconds since the epoch)."""

    labels: Sequence[str]
    vectors: Any
    timestamps: Sequence[float]

    def __len__(self) -> int:
        return len(self.labels)


class Sampler(Plugin, ABC):
    """Chooses the memory samples replayed beside new data (continual learning)."""

    kind = "samplers"

    @abstractmethod
    def sample(self, pool: ReplayPool, k: int, seed: int) -> list[int]:
        """``min(k, len(pool))`` distinct positions in ``pool``; the same seed gives the same
        positions."""


# --- selectors (continual learning) --------------------------------------------------------------


@dataclass(frozen=True)
class ScoredRows:
    """New rows as the current model sees them: its class probabilities (a float numpy array,
    one row per example, columns in class-index order) and each row's true class index."""

    probabilities: Any
    labels: Sequence[int]

    def __len__(self) -> int:
        return len(self.labels)


class Selector(Plugin, ABC):
    """Chooses which new rows an update learns from (e.g. those the model is unsure or wrong
    about)."""

    kind = "selectors"

    @abstractmethod
    def select(self, rows: ScoredRows) -> list[int]:
        """The positions of the rows kept, ascending."""


# --- regularizers (continual learning) -----------------------------------------------------------


@dataclass(frozen=True)
class RegularizerContext:
    """What a regularizer sees before an update trains: ``old_batches()`` yields the old
    task's rows as model inputs with their ``labels`` (EWC's Fisher information is estimated on
    them); ``previous`` is the folder of the state the previous update saved (online EWC keeps
    accumulating it), or None for the first update."""

    old_batches: Callable[[], Iterable[Mapping[str, Any]]]
    previous: Path | None = None


class Regularizer(Plugin, ABC):
    """Keeps a model near what it knew while it learns new data (continual learning): a penalty
    added to the training loss at every step."""

    kind = "regularizers"

    @abstractmethod
    def prepare(self, model: Any, ctx: RegularizerContext) -> None:
        """Called once, before training, with the model as it is (the weights to stay near)."""

    @abstractmethod
    def penalty(self, model: Any) -> Any:
        """The penalty of the model's current weights: a scalar tensor (0 for none)."""

    def save(self, folder: Path) -> None:
        """Writes what the next update needs into ``folder`` (safetensors / JSON, never a
        pickle). The default keeps nothing."""


# --- safety: input filters and output rules ---------------------------------------------------

# What a rule does when its check matches: refuse the text, mask the matched spans, put a fixed
# text in its place, or let it through and report it.
RULE_ACTIONS = ("block", "redact", "replace", "flag")


@dataclass(frozen=True)
class TextMatch:
    """What a check found in one text: the characters ``text[start:end]`` (a verdict on the
    whole text, like a classifier's, spans all of it), what it is (``label``, e.g. "email" or
    "spam") and how sure the check is (1.0 for a pattern)."""

    start: int
    end: int
    label: str
    score: float = 1.0


DEFAULT_MASK = "[{label}]"


def redact(text: str, matches: Sequence[TextMatch], mask: str = DEFAULT_MASK) -> str:
    """``text`` with every matched span replaced by ``mask``, where "{label}" stands for the
    match's label upper-cased (an email becomes "[EMAIL]"). Overlapping spans merge into one,
    masked with the label of the span that starts first."""
    spans: list[list] = []
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        start, end = max(0, m.start), min(len(text), m.end)
        if end <= start:
            continue
        if spans and start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end, m.label])
    out, at = [], 0
    for start, end, label in spans:
        out.append(text[at:start])
        out.append(mask.replace("{label}", label.upper()))
        at = end
    out.append(text[at:])
    return "".join(out)


@dataclass(frozen=True)
class SafetyContext:
    """What a check may need once, before it runs: ``model_folder(model_id, field)`` is the
    verified folder of a text-classification model artifact (safetensors or ONNX weights, never
    a pickle); a bad id raises InvalidArgument naming ``field``."""

    model_folder: Callable[[str, str], Path]


class TextCheck(Plugin, ABC):
    """Finds what a safety rule acts on in texts (the shared contract of input filters and
    output rule matchers)."""

    # The action a rule takes when the policy names none (one of RULE_ACTIONS).
    default_action: ClassVar[str] = "block"

    def prepare(self, ctx: SafetyContext) -> None:
        """Called once before the first ``find`` (a classifier loads its model here)."""

    @abstractmethod
    def find(self, texts: Sequence[str]) -> list[list[TextMatch]]:
        """For each text, in order, what matched (an empty list: nothing). Must be safe to call
        from several threads at once, and fast: it runs on every request."""


class InputFilter(TextCheck):
    """Screens what users send before a model sees it (a blocklist, PII, a classifier)."""

    kind = "input_filters"


class OutputMatcher(TextCheck):
    """The condition of an output rule: what in a model's answer the rule acts on."""

    kind = "output_rules"


# --- mitigators (fairness) -----------------------------------------------------------------------


@dataclass(frozen=True)
class FairnessRows:
    """Rows of a binary classification problem as a fairness mitigation sees them: ``labels``
    (0/1 numpy ints), ``groups`` (the sensitive feature's value per row, numpy strings), and what
    a model knows of each row: ``scores`` (the probability of the positive class, floats; None
    when unknown) and ``features`` (a 2-D float numpy array; None when the rows have none)."""

    labels: Any
    groups: Any
    scores: Any = None
    features: Any = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MitigationResult:
    """A mitigation's 0/1 predictions for the rows it was asked about; ``baseline`` the same
    learner's predictions without the fairness constraint when it trained one (None when it
    post-processes an existing model); ``details`` what it chose (thresholds, weights...)."""

    predictions: Any
    baseline: Any = None
    details: dict[str, Any] = field(default_factory=dict)


class Mitigator(Plugin, ABC):
    """Makes a classifier's decisions fairer across groups (post-processing or a reduction)."""

    kind = "mitigators"
    # What the rows must carry: "scores" (post-processing a model) or "features" (training one).
    needs: ClassVar[str] = "scores"

    @abstractmethod
    def mitigate(self, fit: FairnessRows, apply: FairnessRows, seed: int) -> MitigationResult:
        """Learns the mitigation on ``fit`` and predicts ``apply``; the same seed gives the same
        predictions."""


KIND_CONTRACTS: dict[str, type[Plugin]] = {
    "loaders": Loader,
    "cleaners": Cleaner,
    "augmenters": Augmenter,
    "finetune": FinetuneStrategy,
    "trackers": Tracker,
    "baselines": Baseline,
    "searchers": Searcher,
    "schedulers": Scheduler,
    "compressors": Compressor,
    "samplers": Sampler,
    "regularizers": Regularizer,
    "selectors": Selector,
    "input_filters": InputFilter,
    "output_rules": OutputMatcher,
    "mitigators": Mitigator,
}


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginEntry:
    """A discovered entry point, not yet imported."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str


@dataclass(frozen=True)
class LoadError:
    kind: str
    name: str
    distribution: str
    error: str


@dataclass(frozen=True)
class PluginChoice:
    """A plugin named by a client, with its config (already a plain dict)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)


class PluginRegistry:
    """Finds plugins by entry point, imports them on first use, validates their configs."""

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        required: Iterable[str] = (),
        autoload: bool = True,
    ) -> None:
        # allow / required items are "kind:name" or a bare "name" (any kind).
        self._allow = set(allow)
        self._required = set(required)
        self._autoload = autoload
        self._loaded: dict[tuple[str, str], type[Plugin]] = {}
        self._errors: dict[tuple[str, str, str], LoadError] = {}
        # Grows whenever what the registry holds changes (a plugin imported, a new load error):
        # PluginService rebuilds its cached listing only then.
        self.version = 0

    # phase 1 --------------------------------------------------------------------------------
    def discover(self, kind: str) -> list[PluginEntry]:
        """Entry points of ``kind`` that settings permit, sorted, without importing any."""
        entries = []
        for ep in metadata.entry_points(group=GROUP_PREFIX + kind):
            dist = ep.dist
            entry = PluginEntry(
                kind=kind,
                name=ep.name,
                value=ep.value,
                distribution=dist.metadata["Name"] if dist else "unknown",
                version=dist.version if dist else "0",
            )
            if self._permitted(entry):
                entries.append(entry)
        entries.sort(key=lambda e: (e.name, e.distribution != "forgeline", e.distribution))
        return entries

    def _permitted(self, entry: PluginEntry) -> bool:
        if self._matches(self._allow, entry) or self._matches(self._required, entry):
            return True
        if self._allow:
            return False
        return self._autoload or entry.distribution == "forgeline"

    @staticmethod
    def _matches(names: set[str], entry: PluginEntry) -> bool:
        return entry.name in names or f"{entry.kind}:{entry.name}" in names

    # phase 2 --------------------------------------------------------------------------------
    def load_kind(self, kind: str) -> list[type[Plugin]]:
        """Imports every permitted plugin of ``kind``; broken ones are recorded and skipped."""
        seen: dict[str, PluginEntry] = {}
        for entry in self.discover(kind):
            if entry.name in seen:
                first = seen[entry.name]
                self._fail(
                    entry,
                    f"duplicate plugin name {entry.name!r}: already provided by "
                    f"{first.distribution}=={first.version} ({first.value})",
                )
                continue
            seen[entry.name] = entry
            if (kind, entry.name) not in self._loaded:
                self._import(entry)
        return [cls for (k, _), cls in sorted(self._loaded.items()) if k == kind]

    def get(self, kind: str, name: str) -> type[Plugin]:
        """The plugin class, importing it on first use. NotFound lists the known names."""
        if (kind, name) in self._loaded:
            return self._loaded[(kind, name)]
        entries = [e for e in self.discover(kind) if e.name == name]
        if entries:
            cls = self._import(entries[0])
            if cls is not None:
                return cls
            error = self._errors[(kind, name, entries[0].distribution)].error
            raise FailedPrecondition(
                f"{kind} plugin {name!r} is installed but failed to load: {error}",
                reason="PLUGIN_BROKEN",
                metadata={"kind": kind, "plugin": name},
            )
        known = ", ".join(e.name for e in self.discover(kind)) or "none"
        raise NotFound(
            f"unknown {kind} plugin {name!r}; known: {known}",
            reason="PLUGIN_NOT_FOUND",
            metadata={"kind": kind, "plugin": name, "known": known},
        )

    def create(
        self, kind: str, name: str, config: Mapping[str, Any] | None, field_path: str
    ) -> Plugin:
        """An instance with a validated config; every bad config field is named under field_path."""
        try:
            cls = self.get(kind, name)
        except NotFound as exc:
            raise InvalidArgument.for_field(
                f"{field_path}.name", exc.message, reason="PLUGIN_NOT_FOUND"
            ) from exc
        try:
            cfg = cls.Config.model_validate(dict(config or {}))
        except ValidationError as exc:
            violations = [
                FieldViolation(
                    ".".join([f"{field_path}.config", *map(str, err["loc"])]), err["msg"]
                )
                for err in exc.errors()
            ]
            raise InvalidArgument(
                f"invalid config for {kind} plugin {name!r}: "
                + "; ".join(f"{v.field}: {v.description}" for v in violations),
                reason="INVALID_PLUGIN_CONFIG",
                violations=violations,
            ) from exc
        return cls(cfg)

    def create_all(self, kind: str, choices: list[PluginChoice], field_path: str) -> list[Plugin]:
        """Instances for every choice; the violations of all of them are reported at once."""
        problems = Violations()
        plugins = []
        for i, choice in enumerate(choices):
            try:
                plugins.append(self.create(kind, choice.name, choice.config, f"{field_path}[{i}]"))
            except InvalidArgument as exc:
                problems.extend(exc.violations or [])
        problems.raise_if_any()
        return plugins

    def errors(self, kind: str | None = None) -> list[LoadError]:
        return [e for e in self._errors.values() if kind is None or e.kind == kind]

    def check_required(self) -> None:
        """Raises when a plugin that settings list as required is broken or missing."""
        for error in self._errors.values():
            if f"{error.kind}:{error.name}" in self._required or error.name in self._required:
                raise FailedPrecondition(
                    f"required plugin {error.kind}:{error.name} ({error.distribution}) "
                    f"failed to load: {error.error}",
                    reason="REQUIRED_PLUGIN_BROKEN",
                )
        loaded = {name for _, name in self._loaded} | {f"{k}:{n}" for k, n in self._loaded}
        for item in sorted(self._required):
            kind, _, name = item.rpartition(":")
            if kind and (kind, name) not in self._loaded:
                try:
                    self.get(kind, name)
                except (NotFound, FailedPrecondition) as exc:
                    raise FailedPrecondition(
                        f"required plugin {item} is not available: {exc.message}",
                        reason="REQUIRED_PLUGIN_MISSING",
                    ) from exc
            elif not kind and item not in loaded:
                raise FailedPrecondition(
                    f"required plugin {item!r} is not installed (or its kind was never loaded)",
                    reason="REQUIRED_PLUGIN_MISSING",
                )

    def _import(self, entry: PluginEntry) -> type[Plugin] | None:
        try:
            ep = metadata.EntryPoint(entry.name, entry.value, GROUP_PREFIX + entry.kind)
            cls = ep.load()
            problem = contract_problem(entry.kind, entry.name, cls)
        except Exception as exc:  # a broken third-party package must not take the service down
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            self._fail(entry, problem)
            return None
        self._loaded[(entry.kind, entry.name)] = cls
        self.version += 1
        return cls

    def _fail(self, entry: PluginEntry, error: str) -> None:
        log.warning(
            "plugin_load_failed",
            kind=entry.kind,
            plugin=entry.name,
            package=f"{entry.distribution}=={entry.version}",
            error=error,
        )
        key = (entry.kind, entry.name, entry.distribution)
        failure = LoadError(entry.kind, entry.name, entry.distribution, error)
        if self._errors.get(key) != failure:
            self._errors[key] = failure
            self.version += 1


def contract_problem(kind: str, name: str, cls: object) -> str | None:
    """Why ``cls`` does not fulfil the contract of ``kind`` under ``name``; None when it does."""
    base = KIND_CONTRACTS.get(kind)
    if base is None:
        return f"unknown plugin kind {kind!r}; known kinds: {', '.join(sorted(KIND_CONTRACTS))}"
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"{cls!r} is not a subclass of {base.__module__}.{base.__name__}"
    if getattr(cls, "__abstractmethods__", None):
        return f"{cls.__name__} leaves abstract methods: {sorted(cls.__abstractmethods__)}"
    if cls.name != name:
        return f"{cls.__name__}.name is {cls.name!r} but its entry point is named {name!r}"
    if not _NAME_RE.match(name):
        return f"plugin name {name!r} must be short lowercase letters, digits and underscores"
    config = cls.Config
    if not (isinstance(config, type) and issubclass(config, PluginConfig)):
        return f"{cls.__name__}.Config must subclass forgeline.registry.PluginConfig"
    undocumented = [f for f, info in config.model_fields.items() if not info.description]
    if undocumented:
        return f"{cls.__name__}.Config fields without a description: {undocumented}"
    if issubclass(cls, TextCheck) and cls.default_action not in RULE_ACTIONS:
        return f"{cls.__name__}.default_action {cls.default_action!r} is not one of {RULE_ACTIONS}"
    if issubclass(cls, Mitigator) and cls.needs not in ("scores", "features"):
        return f"{cls.__name__}.needs {cls.needs!r} is not 'scores' or 'features'"
    return None


def config_schema(cls: type[Plugin]) -> dict[str, Any]:
    """The JSON Schema of a plugin's config."""
    return cls.Config.model_json_schema()
