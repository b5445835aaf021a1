"""The DAG drawing uses the console's task names and shows If/Else, ExitHandler and loop groups."""

import re
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl

import gemini_sft.cli as cli
from gemini_sft.dag import build_dag, load_dag, render, to_dot, to_mermaid
from gemini_sft.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
COMPILED = REPO / "compiled" / "gemini_sft_pipeline.yaml"


@dsl.component(base_image="example.com/gemini-sft:test", install_kfp_package=False)
def _step(x: int) -> int:
    return x


@dsl.component(base_image="example.com/gemini-sft:test", install_kfp_package=False)
def _gate(x: int) -> bool:
    return x > 0


@dsl.component(base_image="example.com/gemini-sft:test", install_kfp_package=False)
def _notify(status: dsl.PipelineTaskFinalStatus) -> None:
    print(status.state)


@dsl.pipeline(name="dag-sample")
def _sample(n: int = 1) -> None:
    notify = _notify().set_display_name("Email the result")
    with dsl.ExitHandler(notify, name="Run all steps"):
        raw = dsl.importer(artifact_uri="gs://b/raw.jsonl", artifact_class=dsl.Dataset).set_display_name(
            "Import raw data")
        clean = _step(x=n).set_display_name("Clean and split").after(raw)
        gate = _gate(x=clean.output).set_display_name("Gate")
        with dsl.If(gate.output == True, name="gate-passed"):  # noqa: E712 - KFP needs the comparison
            _step(x=clean.output).set_display_name("Promote")
        with dsl.Else():
            _step(x=clean.output).set_display_name("Record rejection")
        with dsl.ParallelFor([1, 2]) as item:
            _step(x=item).set_display_name("Score shard")


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dag") / "sample.yaml"
    compiler.Compiler().compile(_sample, str(path))
    return path


def task_names(document: dict) -> set[str]:
    """Every taskInfo.name of a non-group task, as the console shows them."""
    components = document["components"]
    names: set[str] = set()

    def walk(dag: dict) -> None:
        for task in dag.get("tasks", {}).values():
            component = components[task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"])
            else:
                names.add(task["taskInfo"]["name"])

    walk(document["root"]["dag"])
    return names


def test_nodes_carry_the_console_names_and_kinds(spec_path: Path) -> None:
    dag = load_dag(spec_path)
    document = yaml.safe_load(spec_path.read_text())
    assert set(dag.labels()) == task_names(document)
    kinds = {node.label: node.kind for node in dag.nodes}
    assert kinds["Import raw data"] == "importer"
    assert kinds["Email the result"] == "exit"
    assert kinds["Gate"] == "task"


def test_groups_show_conditions_in_task_names(spec_path: Path) -> None:
    groups = {group.label: group for group in load_dag(spec_path).groups}
    assert groups["Run all steps"].kind == "exit-handler"
    assert groups["gate-passed"].condition == "Gate.Output == true"
    else_group = next(g for g in groups.values() if g.condition.startswith("not ("))
    assert else_group.condition == "not (Gate.Output == true)"
    loop = next(g for g in groups.values() if g.kind == "loop")
    assert loop.condition == "for each of [1, 2]"
    nodes = {node.label: node.group for node in load_dag(spec_path).nodes}
    assert nodes["Promote"] == groups["gate-passed"].group_id
    assert nodes["Record rejection"] == else_group.group_id


def test_mermaid_drawing(spec_path: Path) -> None:
    text = render(spec_path, "mermaid")
    assert text.startswith("flowchart TD\n")
    assert re.search(r'subgraph g_\w+\["gate-passed: Gate.Output == true"\]', text)
    assert re.search(r'\w+\[/"Import raw data"/\]', text)
    clean_id = re.search(r'(\w+)\["Clean and split"\]', text).group(1)
    gate_id = re.search(r'(\w+)\["Gate"\]', text).group(1)
    assert f"{clean_id} --> {gate_id}" in text
    assert re.search(r"g_exit_handler_1 -\. on exit \.-> t_\w+", text)
    assert text.count("subgraph ") == len(re.findall(r"^\s*end$", text, flags=re.MULTILINE)) == 5


def test_dot_drawing_is_consistent(spec_path: Path) -> None:
    dag = load_dag(spec_path)
    text = to_dot(dag)
    assert text.count("{") == text.count("}")
    assert "compound=true;" in text
    declared = set(re.findall(r"^\s*(\w+) \[", text, flags=re.MULTILINE))
    for source, target in re.findall(r"^\s*(\w+) -> (\w+)", text, flags=re.MULTILINE):
        assert source in declared and target in declared
    assert re.search(r'label="gate-passed: Gate.Output == true";', text)
    assert re.search(r'-> t_notify \[ltail=cluster_g_exit_handler_1, style=dashed, label="on exit"\]', text)
    assert re.search(r"-> g_\w*condition_branches\w* \[lhead=cluster_g_\w*condition_branches\w*\]", text)


def test_labels_are_escaped() -> None:
    document = {
        "pipelineInfo": {"name": 'quote"d'},
        "root": {"dag": {"tasks": {"a": {"componentRef": {"name": "comp-a"}, "taskInfo": {"name": 'Say "hi"'}}}}},
        "components": {"comp-a": {"executorLabel": "exec-a"}},
    }
    dag = build_dag(document)
    assert 't_a["Say #quot;hi#quot;"]' in to_mermaid(dag)
    assert 't_a [label="Say \\"hi\\""];' in to_dot(dag)


def test_cli_writes_a_drawing(spec_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("dag",))
    output = tmp_path / "dag.dot"
    assert cli.main(["dag", "--spec", str(spec_path), "--format", "dot", "--output", str(output)]) == 0
    assert output.read_text().startswith('digraph "dag-sample"')
    assert cli.main(["dag", "--spec", str(tmp_path / "missing.yaml")]) == 2


def test_not_a_pipeline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no root DAG"):
        build_dag({"pipelineInfo": {"name": "x"}, "root": {}})
    with pytest.raises(ConfigError, match="Unknown DAG format"):
        render(tmp_path / "x.yaml", "png")


@pytest.mark.skipif(not COMPILED.exists(), reason="compiled/gemini_sft_pipeline.yaml not compiled yet")
def test_the_shipped_spec_draws_every_task_by_its_console_name() -> None:
    dag = load_dag(COMPILED)
    document = yaml.safe_load(COMPILED.read_text())
    assert set(dag.labels()) == task_names(document)
    assert any(group.kind == "condition" and group.condition for group in dag.groups)
