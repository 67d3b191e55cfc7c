"""Configuration of a supervised meta-training run (parsed by tyro in the scripts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from metarl.errors import require
from metarl.runs.cli import with_preset
from metarl.supervised.models import MlpInit, NormStyle
from metarl.supervised.presets import PRESETS, SupervisedPreset
from metarl.supervised.trainer import LoopConfig

Family = Literal["sinusoid", "omniglot", "miniimagenet"]


@dataclass
class SupervisedConfig(LoopConfig):
    """Meta-train MAML / FOMAML / Reptile (or the pretrained baseline) on a few-shot family."""

    family: Family = "sinusoid"
    """Task family: sinusoid, omniglot or miniimagenet."""
    k_shot: int = 10
    """Support examples per task (sinusoid) or per class (classification): the K in K-shot."""
    k_query: int = 10
    """Query examples per task (sinusoid) or per class (classification) during training."""
    n_way: int = 5
    """Classes per task (classification only): the N in N-way."""
    eval_query: int = 100
    """Query examples per task (sinusoid) or per class (classification) at evaluation."""
    mlp_init: MlpInit = "torch"
    """Initialisation of the sinusoid MLP: torch (PyTorch's default) or maml (the original
    code's truncated normal, std 0.01, zero biases)."""
    batch_norm: NormStyle = "fast"
    """Batch norm's affine map (classification only): fast -- scale and shift, both adapted in
    the inner loop; original -- a shift only, meta-learned by the outer update alone, as in
    the original code. original needs --algo maml, fomaml or pretrained."""
    data_root: Path | None = None
    """Dataset folder (classification only); default: $METARL_OMNIGLOT or
    $METARL_MINIIMAGENET, else ~/.cache/metarl/<family>."""
    out_dir: Path = Path("runs/sinusoid-maml")
    """Run folder: config, checkpoints, TensorBoard events, results.json, plots."""
    resume: bool = False
    """Continue the run in --out-dir from its newest valid checkpoint."""
    preset: SupervisedPreset | None = None
    """Named settings to start from (--preset NAME --help shows the values it sets);
    explicit flags override."""

    def validate(self) -> None:
        super().validate()
        require(self.k_shot >= 1, f"--k-shot must be at least 1, got {self.k_shot}")
        require(self.k_query >= 1, f"--k-query must be at least 1, got {self.k_query}")
        require(self.eval_query >= 1, f"--eval-query must be at least 1, got {self.eval_query}")
        require(self.n_way >= 2, f"--n-way must be at least 2, got {self.n_way}")
        if self.batch_norm == "original":
            require(self.family != "sinusoid",
                    "--batch-norm original applies to omniglot and miniimagenet (the sinusoid "
                    "MLP has no batch norm); leave it at fast")
            require(self.algo != "reptile",
                    "--batch-norm original makes the shifts outer-only parameters, which "
                    "reptile cannot learn (θ − mean θ' is zero for them); use --algo maml or "
                    "fomaml, or --batch-norm fast")

    def identity(self) -> dict[str, Any]:
        """The settings recorded in config.json (everything but the resume flag)."""
        d = asdict(self)
        d.pop("resume")
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def apply_preset(cfg: SupervisedConfig, name: str | None) -> SupervisedConfig:
    """``cfg`` with the named preset's values (unknown names get a clear error)."""
    return with_preset(cfg, PRESETS, name)
