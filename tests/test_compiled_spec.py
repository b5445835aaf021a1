"""The compiled spec is a product: it matches the code, installs nothing at run time and names every task."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from gemini_sft.components.base import DEFAULT_IMAGE
from gemini_sft.pipelines.compiler import compile_pipeline

REPO = Path(__file__).resolve().parents[1]
CHECKED_IN_SPEC = REPO / "compiled" / "gemini_sft_pipeline.yaml"

EXPECTED_STEPS = {
    "resolve-raw-data": "Find this run's raw data",
    "find-champion": "Find production model",
    "clean-data": "Clean and split data",
    "validate-data": "Validate dataset and estimate cost",
    "tune-model": "Tune Gemini (supervised)",
    "train-open-weights": "Tune open model (LoRA)",
    "choose-checkpoint": "Choose checkpoint on validation",
    "evaluate-models": "Evaluate base vs tuned on holdout",
    "gate-model": "Gate: does the tuned model beat the baseline?",
    "promote-model": "Promote tuned model to production",
    "record-rejection": "Record rejection and reasons",
    "deploy-open-weights": "Deploy open model to an endpoint",
    "summarize-run": "Write run summary",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(CHECKED_IN_SPEC.read_text(encoding="utf-8"))


def _dag_tasks(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from spec["root"]["dag"]["tasks"].items()
    for component in spec["components"].values():
        yield from component.get("dag", {}).get("tasks", {}).items()


def test_checked_in_spec_matches_the_code(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "spec.yaml")
    assert fresh.read_text(encoding="utf-8") == CHECKED_IN_SPEC.read_text(encoding="utf-8"), (
        "compiled/gemini_sft_pipeline.yaml is stale: run `make compile` and commit the result."
    )


def test_compiling_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    first = compile_pipeline(tmp_path / "a.yaml").read_bytes()
    second = compile_pipeline(tmp_path / "b.yaml").read_bytes()
    assert first == second


def test_every_step_runs_in_the_project_image_and_installs_nothing(spec: dict[str, Any]) -> None:
    executors = spec["deploymentSpec"]["executors"]
    # the open-weights step is launched by GCPC's custom job launcher (its image); the job runs the GPU image
    containers = [e["container"] for name, e in executors.items() if "container" in e
                  and name != "exec-train-open-weights"]
    assert len(containers) == len(EXPECTED_STEPS) - 1
    for container in containers:
        assert container["image"] == DEFAULT_IMAGE
        command_line = " ".join(container.get("command", []) + container.get("args", []))
        assert "pip install" not in command_line
        assert "pip3 install" not in command_line


def test_every_task_has_a_display_name(spec: dict[str, Any]) -> None:
    names = {key: task["taskInfo"]["name"] for key, task in _dag_tasks(spec)}
    for key, display in EXPECTED_STEPS.items():
        assert names.get(key) == display
    component_tasks = {k: v for k, v in names.items() if not k.startswith("condition")}
    assert all(display != key for key, display in component_tasks.items())


def test_promotion_is_conditional_on_the_gate(spec: dict[str, Any]) -> None:
    tasks = dict(_dag_tasks(spec))
    conditions = [
        t["triggerPolicy"]["condition"] for t in tasks.values() if "condition" in t.get("triggerPolicy", {})
    ]
    assert any("gate-model" in c and "== true" in c for c in conditions)
    assert any("!(" in c and "gate-model" in c for c in conditions)


def test_custom_image_and_notifications(tmp_path: Path) -> None:
    path = compile_pipeline(
        tmp_path / "spec.yaml", image="europe-docker.pkg.dev/p/r/gemini-sft:1", notification_emails=["ml@example.com"]
    )
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e}
    assert "europe-docker.pkg.dev/p/r/gemini-sft:1" in images
    assert any("notification-email" in key for key, _ in _dag_tasks(spec))
    assert any("exit-handler" in key for key, _ in _dag_tasks(spec))
    assert spec["root"]["inputDefinitions"]["parameters"]["notification_emails"]["defaultValue"] == [
        "ml@example.com"
    ]


# Components whose stages do not describe their parameters yet (their shells are being given stage records).
NOT_YET_DESCRIBED = {"comp-validate-data", "comp-tune-model", "comp-evaluate-models", "comp-gate-model"}
# The importer is KFP's own component: its one input is not ours to describe.
KFP_COMPONENTS = {"comp-importer"}
_LOADED_SPEC = yaml.safe_load(CHECKED_IN_SPEC.read_text(encoding="utf-8"))
EXECUTOR_COMPONENTS = sorted(
    name for name, component in _LOADED_SPEC["components"].items()
    if "executorLabel" in component and name not in KFP_COMPONENTS
)


def _undescribed(component: dict[str, Any]) -> list[str]:
    return [
        f"{kind.removesuffix('Definitions')} {name}"
        for kind in ("inputDefinitions", "outputDefinitions")
        for group in ("parameters", "artifacts")
        for name, definition in component.get(kind, {}).get(group, {}).items()
        if not definition.get("description")
    ]


def test_every_pipeline_parameter_has_a_one_line_description(spec: dict[str, Any]) -> None:
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert len(parameters) >= 40
    undescribed = [name for name, definition in parameters.items() if not definition.get("description")]
    assert undescribed == []
    assert [name for name, definition in parameters.items() if "\n" in definition["description"]] == []
    # The clean settings' descriptions come from CleanConfig, the record the clean step is built from.
    from gemini_sft.dataset.settings import CleanConfig
    from gemini_sft.contracts import settings_of

    for item in settings_of(CleanConfig):
        assert parameters[item.pipeline_name]["description"] == item.description


@pytest.mark.parametrize("component", EXECUTOR_COMPONENTS)
def test_every_component_input_and_output_is_described(spec: dict[str, Any], component: str) -> None:
    undescribed = _undescribed(spec["components"][component])
    if undescribed and component in NOT_YET_DESCRIBED:
        pytest.xfail(f"{component} is not described yet: {', '.join(undescribed)}")
    assert undescribed == []


def test_a_pipeline_parameter_without_a_description_is_refused() -> None:
    from gemini_sft.pipelines.gemini_sft_pipeline import describe_parameters

    def pipeline(project: str, undocumented_knob: int = 1) -> None: ...

    with pytest.raises(TypeError, match="undocumented_knob"):
        describe_parameters(pipeline)


def test_both_records_receive_the_dataset_hash_and_find_champion_only_the_registry(spec: dict[str, Any]) -> None:
    tasks = dict(_dag_tasks(spec))
    for task in ("promote-model", "record-rejection"):
        assert "dataset_hash" in tasks[task]["inputs"]["parameters"], task
    assert set(tasks["find-champion"]["inputs"]["parameters"]) == {"registry_uri"}
