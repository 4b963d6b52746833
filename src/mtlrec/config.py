"""Typed, frozen configuration mirroring `params.yaml`.

Every section is a frozen pydantic model that forbids unknown keys, so a typo in `params.yaml`
fails loudly with the dotted path of the offending key instead of being silently ignored.
Each pipeline stage receives only its own section.

One set of defaults: every default here is the value `params.yaml` sets (tests/test_config.py
compares the two), so a config built in code is the pipeline's unless it says otherwise.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mtlrec.errors import UserError

TaskName = Literal["ctr", "cvr", "relevance"]
BottomName = Literal["shared_bottom", "mmoe", "ple"]


class ConfigError(UserError, ValueError):
    """`params.yaml` is missing, malformed, or has an unknown or mistyped key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulationSize(_Section):
    """How big the synthetic shop is."""

    n_users: int = Field(gt=0)
    n_items: int = Field(gt=0)
    n_days: int = Field(gt=0)
    impressions_per_day: int = Field(gt=0)
    n_judged_queries: int = Field(gt=0)
    judgments_per_query: int = Field(gt=0)


class SourceConfig(_Section):
    """Where the raw batches come from: the simulator, or a public dataset file to ingest."""

    kind: Literal["simulate", "homedepot"] = "simulate"
    # The file an ingested source reads (Kaggle's Home Depot train.csv for `homedepot`).
    path: str = "sources/homedepot/train.csv"


class SimulateConfig(_Section):
    seed: int = 7
    start_date: date = date(2026, 1, 1)
    search_share: float = Field(default=0.5, ge=0.0, le=1.0)
    # The shop's size, by name. Not called `size`: DVC's run cache drops any param key named
    # `size` or `nfiles` (iterative/dvc#10296), so changing it would restore stale data.
    preset: str = "default"
    presets: dict[str, SimulationSize]

    @model_validator(mode="after")
    def _preset_exists(self) -> SimulateConfig:
        if self.preset not in self.presets:
            known = sorted(self.presets)
            raise ValueError(f"preset {self.preset!r} is not one of the presets {known}")
        return self

    @property
    def active(self) -> SimulationSize:
        return self.presets[self.preset]


class ValidateConfig(_Section):
    # "fail": a row-level violation rejects the whole batch; "split": bad rows are quarantined
    # with their reason and the good rows go on.
    row_policy: Literal["fail", "split"] = "fail"
    # With "split", a batch with a larger share of bad rows still fails whole: a broken source.
    split_max_share: float = Field(default=0.1, ge=0.0, le=1.0)
    # Volume: a batch's rows within [min, max] x the median of the table's earlier batches.
    volume_min_ratio: float = Field(default=0.5, ge=0.0)
    volume_max_ratio: float = Field(default=2.0, gt=0.0)
    # Drift against the earlier batches of the same table: CTR (mean click) within this
    # relative tolerance; each price quantile within a factor (1 + tolerance); category mix
    # within this KL divergence. On top, `noise_sigmas` standard errors of sampling noise, so
    # a small batch does not fail by chance.
    ctr_tolerance: float = Field(default=0.25, ge=0.0)
    price_quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    price_tolerance: float = Field(default=0.5, ge=0.0)
    category_max_kl: float = Field(default=0.1, ge=0.0)
    noise_sigmas: float = Field(default=4.0, ge=0.0)
    # Validation results kept per batch and suite; older ones leave the Data Docs.
    keep_results: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ValidateConfig:
        if self.volume_min_ratio > self.volume_max_ratio:
            raise ValueError("volume_min_ratio must not exceed volume_max_ratio")
        if not self.price_quantiles or not all(0.0 < q < 1.0 for q in self.price_quantiles):
            raise ValueError(f"price_quantiles must lie in (0, 1), got {self.price_quantiles}")
        return self


class FeaturesConfig(_Section):
    # The Feast feature service (one per model version, feature_repo/feature_services.py) whose
    # features the training set holds.
    feature_service: str = "mtl_v2"
    windows_days: tuple[int, ...] = (1, 7, 30)
    # Encoder of the item_text view's title embedding (the model's text encoders; "tiny" for
    # tests). Its embeddings land in the same on-disk cache that training reads.
    title_encoder: Literal["minilm", "tiny"] = "minilm"


class DatasetConfig(_Section):
    # Impressions are split by time: the last `test_days` days are test, the `valid_days` before
    # them validation. Judgements are split by query so that no query is in two splits.
    valid_days: int = Field(default=2, gt=0)
    test_days: int = Field(default=2, gt=0)
    judgment_valid_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    judgment_test_share: float = Field(default=0.15, gt=0.0, lt=0.5)


class TextConfig(_Section):
    # "minilm" is the pretrained all-MiniLM-L6-v2 from site-packages; "tiny" a small random BERT
    # built from a config (fast, for tests).
    encoder: Literal["minilm", "tiny"] = "minilm"
    max_length: int = Field(default=32, gt=0)
    batch_size: int = Field(default=128, gt=0)
    # 0 keeps the encoder frozen with cached embeddings; N > 0 fine-tunes its top N layers.
    finetune_layers: int = Field(default=0, ge=0)
    # Word-level query-text match features (K-NRM kernel pooling over the encoder's word
    # embeddings) beside the sentence embeddings.
    word_match: bool = True
    # Per query term kernel counts, weighed by a gate on the term's embedding (DRMM term gating):
    # which query word went unmatched, not only how many.
    term_gating: bool = True
    # With term gating, a learned vector per query word (hashed into this many buckets; 0: none)
    # beside the gate on its frozen embedding: a word's own weight, not only its neighbours'.
    term_buckets: int = Field(default=2048, ge=0)
    # Query words one edit from a word of the catalogue are corrected to it before encoding
    # (see model/spelling.py): a misspelled query otherwise matches no title.
    spell_correct: bool = True


class ModelConfig(_Section):
    bottom: BottomName = "ple"
    tasks: tuple[TaskName, ...] = ("ctr", "cvr", "relevance")
    embedding_dim: int = Field(default=16, gt=0)
    hash_buckets: int = Field(default=20_000, gt=0)
    # Embed the schema's raw ids (user_id, item_id) into hashed buckets. Off where behaviour
    # follows attributes the model sees: an id embedding then mostly memorises each user's few
    # purchases (the cvr heads overfit from the second epoch; see the README on the default shop).
    id_embeddings: bool = False
    text_dim: int = Field(default=32, gt=0)
    bottom_dims: tuple[int, ...] = (128, 64)
    n_experts: int = Field(default=4, gt=0)
    n_shared_experts: int = Field(default=2, gt=0)
    # At least one layer: experts without one would all be x itself.
    expert_dims: tuple[int, ...] = Field(default=(64,), min_length=1)
    tower_dims: tuple[int, ...] = (32,)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)  # the towers' (and the bottom's: None)
    # Dropout in the bottom (its experts, or the shared MLP); None: `dropout`, the towers'. The
    # default PLE's experts hold 896 units a row (the towers 96): at 0 a training step is 4-8%
    # faster with every AUC as close to its oracle on the default shop (README, "No dropout in
    # the experts").
    bottom_dropout: float | None = Field(default=0.0, ge=0.0, lt=1.0)
    # Pairwise inner products of the id/categorical field embeddings as extra bottom inputs
    # (IPNN, Qu et al. 2016): user x category taste in one multiplication, not learned by an MLP.
    field_interactions: bool = True
    # Id/categorical fields that bypass the bottom and only add a learned bias to the ctr logit
    # (a shallow position-bias tower, Zhao et al. RecSys 2019), e.g. [position]: the towers then
    # learn position-free click and purchase propensities.
    bias_features: tuple[str, ...] = ("position",)
    # Tasks that read the shared representation (embeddings, shared experts) without writing it:
    # their losses train only their own tower, gate and experts. For the sparse cvr, whose
    # clicked-row loss otherwise overfits the shared layers and costs ctr (the seesaw). A task
    # the model does not have is ignored (an ingested source may narrow `tasks`).
    read_only_tasks: tuple[TaskName, ...] = ("cvr",)
    text: TextConfig = TextConfig()

    @model_validator(mode="after")
    def _valid_tasks(self) -> ModelConfig:
        # `tasks: [cvr]` is the classic single-task CVR model, trained on clicked rows only (the
        # sample-selection-biased baseline that ESMM improves on); with `ctr` it is ESMM.
        if len(set(self.tasks)) != len(self.tasks) or not self.tasks:
            raise ValueError(f"tasks must be non-empty and distinct, got {list(self.tasks)}")
        if "cvr" in self.tasks and "ctr" not in self.tasks and self.tasks != ("cvr",):
            raise ValueError(
                "task 'cvr' is trained ESMM-style as ctr * cvr and needs task 'ctr' "
                "(alone, tasks: [cvr] is the single-task CVR model on clicked rows)"
            )
        if len(set(self.bias_features)) != len(self.bias_features):
            raise ValueError(f"bias_features must be distinct, got {list(self.bias_features)}")
        return self


class TrainConfig(_Section):
    seed: int = 0
    epochs: int = Field(default=3, gt=0)
    batch_size: int = Field(default=2048, gt=0)
    lr: float = Field(default=4.5e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    # "cosine": the learning rate decays from `lr` to 0 over all steps of `epochs`.
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    patience: int = Field(default=2, ge=1)
    # How the best epoch is chosen on the validation split: "normalized" sums each weighted term
    # divided by the loss of predicting its training prior (normalized entropy), so every task
    # counts by its relative gain; "loss" sums the raw weighted terms (relevance's MSE dominates).
    selection: Literal["normalized", "loss"] = "normalized"
    loss_weighting: Literal["static", "uncertainty"] = "static"
    # The products of the bottom's first layer while training: "bf16" (an epoch of the default
    # PLE 1.26x faster on this machine's AVX512-BF16 CPU, the same AUCs), "fp32", or "auto":
    # bf16 on a CPU with bf16 dot products, else fp32 (elsewhere bf16 is emulated; not measured).
    # train_summary.json records which ran. Evaluation and prediction are fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Static weights of the loss terms: "ctr", "ctcvr" (the ESMM term of cvr), "relevance", and
    # "cvr": with ESMM, a positive weight adds the direct CVR loss on the clicked rows.
    loss_weights: dict[Literal["ctr", "ctcvr", "cvr", "relevance"], float] = {
        "ctr": 1.0,
        "ctcvr": 1.0,
        "cvr": 5.0,
        "relevance": 1.0,
    }


class EvaluateConfig(_Section):
    ndcg_k: int = Field(default=10, gt=0)


class BaselinesConfig(_Section):
    """Single-task baselines: the model's architecture and `train`'s params, one task each, with
    their own batch size and learning rate."""

    tasks: tuple[TaskName, ...] = ("ctr", "cvr", "relevance")
    # Their own batch and rate (null: `train`'s). The challenger's 2,048 rows a step would give
    # the relevance model (71,620 judgements, alone) 35 steps an epoch and cost it 0.004 AUC:
    # a weaker baseline, hence a wider multi-task margin that the model did not earn.
    batch_size: int | None = Field(default=1024, gt=0)
    lr: float | None = Field(default=3e-3, gt=0.0)

    def train(self, shared: TrainConfig) -> TrainConfig:
        """`shared` (the `train` section) with the baselines' own batch and rate."""
        own = {"batch_size": self.batch_size, "lr": self.lr}
        return shared.model_copy(update={k: v for k, v in own.items() if v is not None})

    @model_validator(mode="after")
    def _distinct(self) -> BaselinesConfig:
        if len(set(self.tasks)) != len(self.tasks) or not self.tasks:
            raise ValueError(f"tasks must be non-empty and distinct, got {list(self.tasks)}")
        return self


Scenario = Literal["search", "feed"]
# The online test's metrics: the share of sessions whose clicks prefer the challenger under
# team-draft interleaving, and the A/B split's per-session means.
OnlineMetric = Literal[
    "interleaving", "purchases_per_1000", "revenue_per_1000", "ctr_at_k", "ndcg_at_10"
]


class GateConfig(_Section):
    """Champion/challenger gate. Metrics are named `<task>.<metric>` as in metrics JSON."""

    # The first of these that the challenger reports decides (a relevance-only source has no
    # ctcvr).
    primary_metric: tuple[str, ...] = ("ctcvr.auc", "relevance.ndcg@10")
    # The challenger must beat the champion's primary metric by more than this.
    min_improvement: float = Field(default=0.0, ge=0.0)
    # ...and no watched metric may fall more than this below the champion's.
    max_regression: float = Field(default=0.01, ge=0.0)
    watched: tuple[str, ...] = ("ctr.auc", "cvr.auc", "ctcvr.auc", "relevance.ndcg@10")
    force_promote: bool = False
    # The simulated online test (metrics/online_test.json): "required": a challenger that is
    # significantly worse than the champion on `online_metric` is not promoted; "report": the
    # test runs and is reported, the decision stays offline; "off": no test.
    online_test: Literal["required", "report", "off"] = "required"
    online_metric: OnlineMetric = "interleaving"


class OnlineTestConfig(_Section):
    """The simulated online test (`mtlrec online-test`): the challenger and the champion rank
    sessions of the shop's own users and queries, and the shop's shoppers click and buy."""

    sessions: int = Field(default=4000, gt=0)  # A/B: half each; interleaving: all of them
    k: int = Field(default=10, gt=0)  # items shown per session
    # What an interleaved session credits to the team that drafted the item: purchases, what
    # the blends rank for (expected purchase), or clicks (denser, but a ranker that trades
    # clicks for purchases, as popularity does, wins them).
    credit: Literal["purchases", "clicks"] = "purchases"
    seed: int = 0
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class ServeConfig(_Section):
    """The ranking service (`mtlrec serve`) and the ranking function the online test shares."""

    # The ranking score of each scenario: a formula of p_ctr, p_cvr, p_ctcvr, relevance (the
    # model's 0..3 grade) and price (see serving/blend.py).
    blend: dict[Scenario, str] = {"search": "p_ctcvr * relevance / 3", "feed": "p_ctcvr"}
    # The position every candidate is scored at: the model's position bias then shifts all
    # alike, and the ranking follows the position-free propensities.
    position: int = Field(default=1, ge=1)
    # Candidates the retrieval stage hands to the ranker when a request names none.
    retrieve: int = Field(default=100, gt=0)
    # Feed candidates: items of the user's top `feed_categories` categories, then popular ones.
    feed_categories: int = Field(default=3, gt=0)
    # Request limits (a 4xx beyond them).
    max_candidates: int = Field(default=1000, gt=0)
    max_k: int = Field(default=100, gt=0)
    # How often the service looks at the production alias for a new version.
    reload_seconds: float = Field(default=2.0, gt=0.0)

    @model_validator(mode="after")
    def _formulas_parse(self) -> ServeConfig:
        from mtlrec.serving.blend import Blend

        for formula in self.blend.values():
            Blend.parse(formula)  # BlendError (a ValueError) names what is wrong
        return self


class Params(_Section):
    source: SourceConfig = SourceConfig()
    simulate: SimulateConfig
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    features: FeaturesConfig = FeaturesConfig()
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    gate: GateConfig = GateConfig()
    online_test: OnlineTestConfig = OnlineTestConfig()
    serve: ServeConfig = ServeConfig()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_params(raw: dict) -> Params:
    """Build the typed config from a parsed `params.yaml` mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid params:\n{_describe(error)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Load and validate `params.yaml`; raise ConfigError naming every bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigError(f"{path}: not valid YAML: {problem}{where}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return parse_params(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
