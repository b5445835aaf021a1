"""The open-weights backend in ``gemini-sft run --local``: its settings, its pipeline and its run summary.

A local run has no model hub and two CPU cores: with ``tuning_backend=open-weights``
it trains the tiny local model (random weights, built on the data) with settings
that finish in minutes; ``--param`` overrides any of them. The run folder gets the
adapter and ``run_summary.json`` with the backend, the loss curves and the
deployment decision.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

from gemini_sft.open_weights.pipeline_step import CURVES_FILE, OPEN_WEIGHTS_BACKEND, VERTEX_GEMINI_BACKEND
from gemini_sft.open_weights.settings import TINY_LOCAL_MODEL

RUN_SUMMARY_FILE = "run_summary.json"
TRAIN_STEP = "train-open-weights"
DEPLOY_STEP = "deploy-open-weights"

# Pipeline parameters (by pipeline name) of an open-weights local run.
OPEN_WEIGHTS_LOCAL_DEFAULTS: dict[str, Any] = {
    "open_weights_base_model": TINY_LOCAL_MODEL,
    "epochs": 3,
    "open_weights_learning_rate": 2e-2,
    "open_weights_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "lora_rank": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "max_seq_length": 256,
    "max_answer_tokens": 24,
}


def backend_of(parameters: Mapping[str, Any]) -> str:
    """The tuning backend the parameters choose (``vertex-gemini`` when they name none)."""
    return str(parameters.get("tuning_backend") or VERTEX_GEMINI_BACKEND)


def open_weights_local_defaults(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The local settings of the open-weights backend when the parameters choose it, else nothing.

    Args:
        parameters: the run's ``--param`` overrides.
    """
    return dict(OPEN_WEIGHTS_LOCAL_DEFAULTS) if backend_of(parameters) == OPEN_WEIGHTS_BACKEND else {}


def local_pipeline(arguments: Mapping[str, Any]) -> Callable:
    """The pipeline built for kfp.local and the backend the arguments choose.

    Raises:
        ConfigError: when ``tuning_backend`` names no backend.
    """
    from gemini_sft.pipelines.gemini_sft_pipeline import build_pipeline

    return build_pipeline(target="local", tuning_backend=backend_of(arguments))


def _train_loss_falls(curves: Mapping[str, list]) -> bool:
    train = [point[1] for point in curves.get("train", [])]
    return len(train) >= 2 and train[-1] < train[0]


def tuning_section(run_dir: Path, output_dir: Path, backend: str) -> dict[str, Any]:
    """The ``tuning`` part of the run summary; for open weights it copies the adapter to the run folder.

    Args:
        run_dir: the kfp.local run folder (one folder per task).
        output_dir: the run folder the user sees.
        backend: the backend that tuned.
    """
    if backend != OPEN_WEIGHTS_BACKEND:
        return {"backend": backend}
    folder = run_dir / TRAIN_STEP / "tuned_model"
    summary = json.loads((folder / "training_summary.json").read_text(encoding="utf-8"))
    curves = json.loads((folder / summary.get("loss_curves", CURVES_FILE)).read_text(encoding="utf-8"))
    adapter = output_dir / "adapter"
    if adapter.exists():
        shutil.rmtree(adapter)
    shutil.copytree(folder / summary["adapter"], adapter)
    return {
        "backend": backend,
        "base_model": summary["base_model"],
        "tiny_local_model": summary["tiny_local_model"],
        "adapter": str(adapter),
        "training_folder": str(folder),
        "epochs_trained": summary["epochs_trained"],
        "stopped_early": summary["stopped_early"],
        "eval_loss_by_epoch": summary["eval_loss_by_epoch"],
        "loss_curves": curves,
        "train_loss_falls": _train_loss_falls(curves),
        "figures": summary["figures"],
    }


def deployment_section(run_dir: Path, gate_passed: bool, backend: str) -> dict[str, Any]:
    """The ``deployment`` part of the run summary: what happened to the candidate after the gate.

    Args:
        run_dir: the kfp.local run folder.
        gate_passed: the gate's verdict.
        backend: the backend that tuned.
    """
    if backend == VERTEX_GEMINI_BACKEND:
        promoted = run_dir / "promote-model" / "promotion_record"
        return ({"decision": "deployed", "backend": backend, **_record_fields(promoted)} if promoted.is_file()
                else {"decision": "not-deployed", "backend": backend, "reason": "the gate failed"})
    deployed = run_dir / DEPLOY_STEP / "deployment_record"
    if deployed.is_file():
        return {"decision": "deployed", "backend": backend, **_record_fields(deployed)}
    reason = "the gate failed: nothing was uploaded or deployed" if not gate_passed else "the deploy step did not run"
    return {"decision": "not-deployed", "backend": backend, "reason": reason}


def _record_fields(path: Path) -> dict[str, Any]:
    record = json.loads(path.read_text(encoding="utf-8"))
    model = record.get("model") or {}
    return {"model": f"{model.get('model', '')}@{model.get('version', '')}", "endpoint": model.get("endpoint", ""),
            "deployed_model_id": record.get("deployed_model_id", ""),
            "previous": record.get("previous_champion"), "record_id": record.get("record_id", "")}


def write_open_weights_summary(result: Any, arguments: Mapping[str, Any]) -> Path:
    """Write (or update) ``run_summary.json`` in the run folder with the tuning, gate and deployment sections.

    Args:
        result: the local run's result (``LocalRunResult``).
        arguments: the pipeline arguments of the run.
    """
    backend = backend_of(arguments)
    path = Path(result.output_dir) / RUN_SUMMARY_FILE
    document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    document.update({
        "tuning": {**document.get("tuning", {}), **tuning_section(Path(result.run_dir), Path(result.output_dir),
                                                                  backend)},
        "gate": {"passed": result.gate_passed, "reasons": result.gate_reasons},
        "metrics": dict(result.metrics),
        "deployment": deployment_section(Path(result.run_dir), result.gate_passed, backend),
    })
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path
