"""Running the whole pipeline on this machine, offline.

The pipeline runs with ``kfp.local``'s SubprocessRunner (each step in a
subprocess of this interpreter, the same code the component image runs on
Vertex), and every Vertex call goes over HTTP to the offline stand-in on
127.0.0.1. Nothing made this way comes from Gemini, and the run folder says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

from gemini_sft.errors import LocalRunError, ConfigError, InputFormatError
from gemini_sft.sample_data import LABEL_PATTERN, SYSTEM_INSTRUCTION, shipped_sample_path
from gemini_sft.storage import GCS_PREFIX, local_path

log = logging.getLogger(__name__)

LOCAL_PROJECT = "local-project"
LOCAL_REGION = "us-central1"
# Written in the run folder when the run starts and rewritten when it ends (succeeded, failed, interrupted).
RUN_STATUS_FILE = "run_status.json"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

STANDIN_NOTICE = (
    "Made by the OFFLINE STAND-IN of the Vertex API: no Gemini model was called and no job was "
    "billed. Use it to check the pipeline, not to judge a model."
)

# Settings that suit a run against the stand-in; --param overrides them.
LOCAL_DEFAULTS: dict[str, Any] = {
    "poll_interval_seconds": 0.2,
    "max_wait_hours": 0.1,
    "eval_requests_per_minute": 6000,
    "bootstrap_samples": 500,
}

# Settings that suit the shipped sample: only some of its rows carry its system instruction, so
# every example gets it (as production would send it), and its answers start with a category label.
SAMPLE_DEFAULTS: dict[str, Any] = {
    "system_instruction": SYSTEM_INSTRUCTION,
    "label_pattern": LABEL_PATTERN,
    "stratify_by": f"regex:{LABEL_PATTERN}",
}


@dataclass
class LocalRunResult:
    """Where a local run's outputs are and what the gate decided."""

    output_dir: Path
    run_dir: Path
    log_file: Path
    seconds: float
    gate_passed: bool
    gate_reasons: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    outcome: str = ""

    @property
    def outcome_text(self) -> str:
        """What happened to the candidate, in words (from the registry's newest record)."""
        return self.outcome or ("PASSED, tuned model promoted" if self.gate_passed else "FAILED, tuned model not promoted")


def default_output_dir() -> Path:
    """A new run folder under ./runs named by the UTC time."""
    return Path("runs") / datetime.now(timezone.utc).strftime("local-%Y%m%d-%H%M%S")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (kfp.local colours its log lines)."""
    return _ANSI.sub("", text)


class _ProgressTee:
    """A text stream that writes the step logs to a file and shows task progress lines.

    It also follows which task runs and keeps, per failed task, the last exception line
    its output showed (the step's own error message).
    """

    _PROGRESS = re.compile(r"Executing task '([^']+)'|Task '([^']+)' finished with status (\w+)")

    def __init__(self, log_stream: TextIO, console: TextIO) -> None:
        self._log = log_stream
        self._console = console
        self._buffer = ""
        self._traceback_indent: int | None = None
        self._last_error = ""
        self.current_task = ""
        self.failures: dict[str, str] = {}

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            plain = strip_ansi(line)
            self._log.write(plain + "\n")
            self._follow_errors(plain)
            self._show_progress(plain)
        return len(text)

    def _follow_errors(self, line: str) -> None:
        """Remember the exception line that ends a traceback (same indent as its ``Traceback`` line)."""
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("Traceback (most recent call last)"):
            self._traceback_indent = indent
        elif self._traceback_indent is not None and stripped and indent == self._traceback_indent:
            if not stripped.startswith(("During handling", "The above exception")):
                name, sep, message = stripped.partition(": ")
                self._last_error = f"{name.rsplit('.', 1)[-1]}: {message}" if sep else stripped
            self._traceback_indent = None

    def _show_progress(self, line: str) -> None:
        match = self._PROGRESS.search(line)
        if not match:
            return
        if match.group(1):
            self.current_task = match.group(1)
            self._last_error = ""
            self._console.write(f"  running  {match.group(1)}\n")
        else:
            task, state = match.group(2), match.group(3)
            if state != "SUCCESS":
                self.failures[task] = self._last_error
            self.current_task = ""
            self._console.write(f"  {state.lower():8} {task}\n")
        self._console.flush()

    def flush(self) -> None:
        self._log.flush()

    def close(self) -> None:
        """Write out a last line that has no newline."""
        if self._buffer:
            self._log.write(strip_ansi(self._buffer))
            self._buffer = ""
        self._log.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _captured_output(log_file: Path, console: TextIO) -> Iterator[_ProgressTee]:
    with open(log_file, "w", encoding="utf-8") as log_stream:
        tee = _ProgressTee(log_stream, console)
        with contextlib.redirect_stdout(tee):  # kfp.local prints step logs to stdout
            try:
                yield tee
            finally:
                tee.close()


def write_run_status(output_dir: Path, state: str, **details: Any) -> None:
    """Record the run's state in ``run_status.json`` of its folder (with the UTC time)."""
    status = {"state": state, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **details}
    (output_dir / RUN_STATUS_FILE).write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")


def raw_data_file(data: str | Path | None) -> Path:
    """The file a local run reads: the shipped sample when none is given; a ``gs://`` URI through the /gcs/ mount.

    Raises InputFormatError (one line saying what to do) when the file is missing, is a folder,
    or is a ``gs://`` URI and this machine has no Cloud Storage FUSE mount.
    """
    if not data:
        return shipped_sample_path()
    text = str(data)
    if text.startswith(GCS_PREFIX):
        mounted = local_path(text)
        if not mounted.is_file():
            raise InputFormatError(
                f"{text}: a local run reads gs:// data through the Cloud Storage FUSE mount ({mounted}), "
                f"which this machine does not have; copy it first (gcloud storage cp {text} .) and pass the "
                "local file to --data."
            )
        return mounted
    path = Path(text)
    if path.is_dir():
        raise InputFormatError(
            f"Raw data {path} is a folder; --data takes one file (JSONL, CSV or TSV, optionally gzip)."
        )
    if not path.is_file():
        raise InputFormatError(f"Raw data file {path} does not exist.")
    return path


def _make_run_folder(path: Path) -> Path:
    """Create the run folder (or reuse an existing one); ConfigError in one line when it cannot be made."""
    folder = path.resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--output {path} is a file; give a folder for the run (it is created if missing).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--output {path}: cannot create the run folder ({exc.strerror}).") from None
    return folder


def _failure_message(error: RuntimeError, tee: _ProgressTee, log_file: Path) -> str:
    """One line naming the failed step and its own error, else kfp's message; both point at the log."""
    for task, step_error in tee.failures.items():
        if step_error:
            return f"Step {task!r} failed: {step_error} (its full output: {log_file})"
    return f"{strip_ansi(str(error))} See {log_file} for the failing step's output."


def _newest_run_dir(pipeline_root: Path) -> Path:
    runs = [p for p in pipeline_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not runs:
        raise LocalRunError(f"The pipeline wrote no run folder under {pipeline_root}.")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def check_local_arguments(pipeline: Any, arguments: Mapping[str, Any]) -> None:
    """Refuse the arguments of a local run the way ``submit`` refuses a run's: types, then the rule set.

    The values checked are what the run would use: the pipeline's defaults overlaid by ``arguments``.

    Args:
        pipeline: the KFP pipeline object that would run.
        arguments: the parameter values it would be called with.

    Raises:
        ConfigError (ParameterValueError for names and types) with one line per problem.
    """
    from gemini_sft.submit import PipelineSpec, check_parameter_values, check_settings

    spec = PipelineSpec.from_pipeline(pipeline)
    check_parameter_values(spec, arguments)
    check_settings(spec, arguments, "the local run was not started")


def run_local(
    data: str | Path | None = None,
    output_dir: Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    console: TextIO | None = None,
    standin: Any | None = None,
) -> LocalRunResult:
    """Run the whole pipeline locally against the offline stand-in.

    Args:
        data: raw examples (a file, or a gs:// URI read through the /gcs/ mount); the shipped sample when None.
        output_dir: the run folder to create; ``runs/local-<time>`` when None.
        parameters: pipeline parameter overrides (names as in the compiled spec).
        console: where progress goes (stdout by default); step logs go to ``pipeline.log``.
        standin: a running VertexStandIn to use (tests inspect what it received); when
            None, one is started for the run and stopped after it.

    Returns the run's outputs and the gate's decision. Raises ConfigError,
    before anything is made or started, when a value is refused by the
    pipeline's rule set (:func:`check_local_arguments`), InputFormatError
    when ``data`` cannot be read and LocalRunError when a step fails (the
    message gives the step's own error and names the log file holding its
    output). ``run_status.json`` in the run folder says whether the run is
    running, succeeded, failed or was interrupted (Ctrl-C: KeyboardInterrupt is
    raised again once the folder is marked).
    """
    from kfp import local

    from gemini_sft.open_weights.local_defaults import local_pipeline, open_weights_local_defaults
    from gemini_sft.open_weights.local_defaults import write_open_weights_summary
    from gemini_sft.standin import LOCAL_RUN_FIRST_RESOURCE_ID, REQUEST_LOG_NAME, VertexStandIn, write_request_log

    console = console or sys.stdout
    data = raw_data_file(data)
    requested_dir = Path(output_dir) if output_dir else default_output_dir()
    arguments: dict[str, Any] = {
        "project": LOCAL_PROJECT,
        "location": LOCAL_REGION,
        "raw_data_uri": str(data.resolve()),
        "registry_uri": str(requested_dir.resolve() / "registry"),
        **LOCAL_DEFAULTS,
        **(SAMPLE_DEFAULTS if data == shipped_sample_path() else {}),
        **open_weights_local_defaults(parameters or {}),
        **dict(parameters or {}),
    }
    pipeline = local_pipeline(arguments)
    # Before the run folder, the stand-in or any step: a bad setting is refused in a second, not in a step.
    check_local_arguments(pipeline, arguments)
    output_dir = _make_run_folder(requested_dir)
    pipeline_root = output_dir / "pipeline_root"
    log_file = output_dir / "pipeline.log"
    started = time.monotonic()
    write_run_status(output_dir, "running", data=str(data))
    with contextlib.ExitStack() as stack:
        if standin is None:
            standin = stack.enter_context(VertexStandIn(first_resource_id=LOCAL_RUN_FIRST_RESOURCE_ID))
        # Every request this run sends is kept, even when a step fails: what Vertex would have received.
        first_request = len(standin.requests)
        request_log = output_dir / REQUEST_LOG_NAME
        stack.callback(lambda: write_request_log(standin.requests[first_request:], request_log))
        arguments["api_endpoint"] = standin.base_url
        console.write(f"Offline stand-in of the Vertex API at {standin.base_url}\n")
        console.write(f"Running the pipeline on {data} (step logs: {log_file})\n")
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(pipeline_root),
            raise_on_error=True,
        )
        tee = stack.enter_context(_captured_output(log_file, console))
        try:
            with warnings.catch_warnings():
                # Display names and resource limits apply on Vertex only, and the steps run in this
                # interpreter (where the package is installed) instead of the image: both expected.
                warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
                warnings.filterwarnings("ignore", message=".*custom or non-Python base image")
                pipeline(**arguments)
        except KeyboardInterrupt:
            write_run_status(output_dir, "interrupted", step=tee.current_task)
            raise KeyboardInterrupt(f"the run folder {output_dir} is marked interrupted ({RUN_STATUS_FILE})") from None
        except TypeError as exc:
            write_run_status(output_dir, "failed", error=str(exc))
            raise ConfigError(f"Invalid pipeline parameter: {exc}") from exc
        except RuntimeError as exc:
            message = _failure_message(exc, tee, log_file)
            write_run_status(output_dir, "failed", error=message)
            raise LocalRunError(message) from exc
    seconds = time.monotonic() - started

    run_dir = _newest_run_dir(pipeline_root)
    result = _collect_outputs(output_dir, run_dir, log_file, seconds)
    result.artifacts["stand-in requests"] = request_log
    _write_summary(result, data)
    write_open_weights_summary(result, arguments)
    if (output_dir / "adapter").is_dir():
        result.artifacts["adapter (LoRA)"] = output_dir / "adapter"
    write_run_status(output_dir, "succeeded", gate_passed=result.gate_passed, seconds=round(seconds, 1))
    return result


def _collect_outputs(output_dir: Path, run_dir: Path, log_file: Path, seconds: float) -> LocalRunResult:
    """Copy the reports next to the run folder's top and read the gate's decision."""
    artifacts: dict[str, Path] = {}
    for label, relative, copy_as in (
        ("train split", "clean-data/train.jsonl", None),
        ("validation split", "clean-data/validation.jsonl", None),
        ("holdout split", "clean-data/holdout.jsonl", None),
        ("rejected rows", "clean-data/rejected.jsonl", None),
        ("dataset version record", "clean-data/dataset_version", None),
        ("cleaning report", "clean-data/report", "cleaning_report.md"),
        ("validation report", "validate-data/report", "validation_report.md"),
        ("tuning summary", "tune-model/summary", "tuning_summary.md"),
        ("loss curves", "tune-model/loss_curves", "loss_curves.json"),
        ("predictions", "evaluate-models/predictions", None),
        ("evaluation report (Markdown)", "evaluate-models/report", "evaluation_report.md"),
        ("evaluation report (HTML)", "evaluate-models/html_report", "evaluation_report.html"),
        ("gate decision", "gate-model/decision", "gate_decision.json"),
        ("promotion record", "promote-model/promotion_record", "promotion_record.json"),
        ("rejection record", "record-rejection/rejection_record", "rejection_record.json"),
        ("deployment record", "deploy-open-weights/deployment_record", "deployment_record.json"),
        ("checkpoint choice", "choose-checkpoint/checkpoint_choice", "checkpoint_choice.json"),
        ("run summary", "summarize-run/run_summary", "run_summary.json"),
    ):
        source = run_dir / relative
        if not source.is_file():
            continue
        if copy_as:
            target = output_dir / copy_as
            shutil.copyfile(source, target)
            artifacts[label] = target
        else:
            artifacts[label] = source

    decision_path = run_dir / "gate-model" / "decision"
    if not decision_path.is_file():
        raise LocalRunError(f"The gate wrote no decision ({decision_path}); see {log_file}.")
    decision = _read_json(decision_path)
    evaluation_path = run_dir / "evaluate-models" / "evaluation"
    metrics = _read_json(evaluation_path).get("metrics", {}) if evaluation_path.is_file() else {}
    return LocalRunResult(
        outcome=_outcome(output_dir / "registry", output_dir),
        output_dir=output_dir,
        run_dir=run_dir,
        log_file=log_file,
        seconds=seconds,
        gate_passed=bool(decision.get("passed")),
        gate_reasons=[str(r) for r in decision.get("reasons", [])],
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        artifacts=artifacts,
    )


def chosen_checkpoint_line(result: LocalRunResult) -> str:
    """One line on the checkpoint the holdout judged and why, from run_summary.json ("" when there is none)."""
    path = result.artifacts.get("run summary")
    summary = _read_json(path) if path else {}
    chosen = (summary.get("tuning") or {}).get("chosen_checkpoint")
    if not chosen:
        return ""
    relative = ((summary.get("costs") or {}).get("checkpoint_selection") or {}).get("relative_to_holdout_evaluation")
    cost = ""
    if relative and relative.get("calls"):  # no calls: the training chose (open weights), nothing was asked
        usd = f", {relative['usd']:.2f}x its cost" if relative.get("usd") is not None else ""
        cost = f"; selection took {relative['calls']:.2f}x the holdout evaluation's calls{usd}"
    return f"Checkpoint: {chosen.get('reason', '')} (rule {chosen.get('rule', '')}{cost})"


def _outcome(registry: Path, output_dir: Path) -> str:
    """The candidate's fate as the registry's newest record tells it ('' when there is no record)."""
    from gemini_sft.promotion import PromotionStore

    if not registry.is_dir():
        return ""
    history = PromotionStore(str(registry)).history()
    if not history:
        return ""
    record = history[-1]
    if record.kind == "staged":
        return (f"PASSED, staged for human review: gemini-sft review {output_dir}, then "
                f"gemini-sft approve --registry-uri {registry} --no-registry {output_dir}")
    if record.kind == "promotion":
        deployed = getattr(record, "deployed_model_id", "")
        return "PASSED, deployed to an endpoint and promoted" if deployed else "PASSED, tuned model promoted"
    if record.kind == "rejection":
        return "FAILED, tuned model not promoted"
    return ""


def _write_summary(result: LocalRunResult, data: Path) -> None:
    """Write SUMMARY.md at the top of the run folder."""
    checkpoint = chosen_checkpoint_line(result)
    lines = [
        "# gemini-sft local run",
        "",
        f"> {STANDIN_NOTICE}",
        "",
        f"- Data: `{data}`",
        f"- Duration: {result.seconds:.1f} s",
        f"- Gate: **{result.outcome_text}**",
        *([f"- {checkpoint}"] if checkpoint else []),
        "",
        "## Gate reasons",
        "",
        *[f"- {reason}" for reason in result.gate_reasons],
        "",
        "## Outputs",
        "",
        *[f"- {label}: `{path}`" for label, path in result.artifacts.items()],
        f"- step logs: `{result.log_file}`",
        f"- every artifact: `{result.run_dir}`",
        "",
    ]
    (result.output_dir / "SUMMARY.md").write_text("\n".join(lines), encoding="utf-8")


def format_result(result: LocalRunResult) -> str:
    """The end-of-run text printed by ``gemini-sft run --local``."""
    keys = [k for k in ("base_rougeL", "tuned_rougeL", "delta_rougeL", "champion_rougeL") if k in result.metrics]
    lines = [
        "",
        f"Finished in {result.seconds:.1f} s. Run folder: {result.output_dir}",
        STANDIN_NOTICE,
        "",
        *[f"  {label:32} {path}" for label, path in result.artifacts.items()],
        "",
        *[f"  {key:16} {result.metrics[key]:.4f}" for key in keys],
        "",
        *([chosen_checkpoint_line(result), ""] if chosen_checkpoint_line(result) else []),
        f"Gate: {result.outcome_text}",
        *[f"  - {reason}" for reason in result.gate_reasons],
        "",
    ]
    return "\n".join(lines)
