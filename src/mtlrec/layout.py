"""Where each stage reads and writes, relative to the project root.

dvc.yaml spells these paths out (it must, for deps and outs); the CLI's defaults and the
Airflow tasks take them from here, so the two orchestrators cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def landing(self) -> Path:
        return self.root / "data" / "landing"

    @property
    def ground_truth(self) -> Path:
        return self.root / "data" / "ground_truth"

    @property
    def validated(self) -> Path:
        return self.root / "data" / "validated"

    @property
    def quarantine(self) -> Path:
        return self.root / "data" / "quarantine"

    @property
    def features(self) -> Path:
        return self.root / "data" / "features"

    @property
    def feature_repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def feast_apply_summary(self) -> Path:
        return self.root / "data" / "feast" / "apply.json"

    @property
    def materialize_summary(self) -> Path:
        return self.root / "data" / "feast" / "materialize.json"

    @property
    def hourly_materialize_summary(self) -> Path:
        """The last scheduled (windowed) materialization: beside the run reports."""
        return self.root / "reports" / "materialize_hourly.json"

    @property
    def training(self) -> Path:
        return self.root / "data" / "training"

    @property
    def text_cache(self) -> Path:
        return self.root / "data" / "cache"

    @property
    def feedback(self) -> Path:
        """The feedback landing zone: impressions that served sessions logged (kept by no
        stage: `land` never touches it)."""
        return self.root / "data" / "feedback"

    @property
    def online_metrics(self) -> Path:
        return self.root / "metrics" / "online_test.json"

    @property
    def index(self) -> Path:
        """The retrieval index and feed candidates (`mtlrec index`)."""
        return self.root / "data" / "index"

    @property
    def retrieval_metrics(self) -> Path:
        return self.root / "metrics" / "retrieval.json"

    @property
    def checkpoints(self) -> Path:
        """Training checkpoints: outside every stage's outputs (DVC deletes those first)."""
        return self.root / "data" / "checkpoints"

    @property
    def timings(self) -> Path:
        """Wall-clock timings of the stages: kept out of their outputs (not hashed by DVC)."""
        return self.root / "reports" / "timings"

    @property
    def challenger(self) -> Path:
        return self.root / "models" / "challenger"

    @property
    def challenger_metrics(self) -> Path:
        return self.root / "metrics" / "challenger.json"

    @property
    def baseline_models(self) -> Path:
        return self.root / "models" / "baselines"

    @property
    def baselines_metrics(self) -> Path:
        return self.root / "metrics" / "baselines.json"

    @property
    def comparison_metrics(self) -> Path:
        return self.root / "metrics" / "comparison.json"

    @property
    def champion_metrics(self) -> Path:
        return self.root / "metrics" / "champion.json"

    @property
    def metrics_report(self) -> Path:
        return self.root / "reports" / "metrics.md"

    @property
    def comparison_plot(self) -> Path:
        return self.root / "reports" / "comparison.csv"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def registry(self) -> Path:
        return self.root / "models" / "registry"

    @property
    def gate_report(self) -> Path:
        return self.root / "metrics" / "gate.json"

    @property
    def params_before_run(self) -> Path:
        """params.yaml as it was before a DAG run wrote its form's values (DVC's tmp folder,
        out of git): the run's teardown writes it back; the form's defaults read it meanwhile."""
        return self.root / ".dvc" / "tmp" / "params.before-run.yaml"

    @property
    def form_defaults(self) -> Path:
        """Where the DAG's form reads its defaults: params.yaml as committed to the workspace,
        never a run's own values."""
        return self.params_before_run if self.params_before_run.is_file() else self.params

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def dvc_yaml(self) -> Path:
        return self.root / "dvc.yaml"

    @property
    def plots_page(self) -> Path:
        """The HTML template of `dvc plots show` (.dvc/config: plots.html_template)."""
        return self.root / ".dvc" / "plots" / "page.html"


DEFAULT = Layout(Path("."))
