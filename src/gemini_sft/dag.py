"""Draw a compiled KFP v2 pipeline spec's DAG as Mermaid or Graphviz DOT.

Nodes carry the names the Vertex AI console shows (each task's
``taskInfo.name``, i.e. its ``set_display_name``); ``dsl.If``/``dsl.Elif``/
``dsl.Else``, ``dsl.ExitHandler`` and ``dsl.ParallelFor`` groups become
nested boxes labelled with the group's name and, for conditions, the
condition in terms of the tasks whose outputs it reads
(``Gate.passed == true``). Edges follow ``dependentTasks``; the exit task of
an ExitHandler gets a dashed "on exit" edge.

Works for any KFP v2 spec (``PipelineSpec`` YAML or JSON); raises ConfigError
when the document is not one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gemini_sft.errors import ConfigError
from gemini_sft.submit import PipelineSpec

NodeKind = Literal["task", "importer", "exit"]
GroupKind = Literal["condition", "branches", "exit-handler", "loop", "pipeline"]
FORMATS = ("mermaid", "dot")

_CHANNEL_REF = re.compile(r"inputs\.parameter_values\['([^']+)'\]")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class DagNode:
    """A task: ``node_id`` unique in the drawing, ``label`` the console's name, ``group`` its enclosing group."""

    node_id: str
    label: str
    kind: NodeKind = "task"
    group: str | None = None


@dataclass(frozen=True)
class DagGroup:
    """A task group (condition, branches, exit handler, loop, nested pipeline) drawn as a box."""

    group_id: str
    label: str
    kind: GroupKind
    parent: str | None = None
    condition: str = ""


@dataclass(frozen=True)
class DagEdge:
    """``source`` runs before ``target`` (ids of nodes or groups); ``on_exit`` for an exit task."""

    source: str
    target: str
    on_exit: bool = False


@dataclass
class Dag:
    """Everything drawn: pipeline name, nodes, groups and edges, in spec order."""

    name: str
    nodes: list[DagNode] = field(default_factory=list)
    groups: list[DagGroup] = field(default_factory=list)
    edges: list[DagEdge] = field(default_factory=list)

    def labels(self) -> list[str]:
        """Every node label (the task names the console shows)."""
        return [node.label for node in self.nodes]

    def nesting(self) -> tuple[dict[str | None, list[DagGroup]], dict[str | None, list[DagNode]]]:
        """``(groups by parent group, nodes by group)``; None is the pipeline's top level."""
        children: dict[str | None, list[DagGroup]] = {}
        for group in self.groups:
            children.setdefault(group.parent, []).append(group)
        members: dict[str | None, list[DagNode]] = {}
        for node in self.nodes:
            members.setdefault(node.group, []).append(node)
        return children, members


def _safe_id(path: str) -> str:
    return _SAFE_ID.sub("_", path)


def _group_kind(component_name: str) -> GroupKind:
    name = component_name.removeprefix("comp-")
    if name.startswith("condition-branches-"):
        return "branches"
    if name.startswith("condition-"):
        return "condition"
    if name.startswith("exit-handler-"):
        return "exit-handler"
    if name.startswith("for-loop-"):
        return "loop"
    return "pipeline"


def _output_label(task_label: str, output: str) -> str:
    """``Gate.passed``, or ``"Gate: pass?".passed`` when the task's name is more than one word."""
    return f"{task_label}.{output}" if re.fullmatch(r"[\w-]+", task_label) else f'"{task_label}".{output}'


def _readable_condition(condition: str, channel_labels: dict[str, str]) -> str:
    """``inputs.parameter_values['pipelinechannel--gate-passed'] == true`` -> ``Gate.passed == true``."""
    text = _CHANNEL_REF.sub(lambda m: channel_labels.get(m.group(1), m.group(1).removeprefix("pipelinechannel--")),
                            condition)
    if text.startswith("!(") and text.endswith(")"):
        text = f"not ({text[2:-1]})"
    return text.replace("!(", "not (")


def _in_run_order(tasks: dict[str, Any]) -> dict[str, Any]:
    """The tasks in an order where every task comes after those it depends on (spec order among equals)."""
    remaining = dict(tasks)
    ordered: dict[str, Any] = {}
    while remaining:
        ready = [key for key, task in remaining.items()
                 if all(dep in ordered or dep not in tasks for dep in task.get("dependentTasks", []) or [])]
        if not ready:  # a cycle cannot be compiled; keep whatever is left in spec order
            ready = list(remaining)
        for key in ready:
            ordered[key] = remaining.pop(key)
    return ordered


def _loop_detail(task: dict[str, Any], inputs: dict[str, str]) -> str:
    """``for each of [1, 2]`` / ``for each of Task.output`` for a ParallelFor group task, else ""."""
    iterator = task.get("parameterIterator") or task.get("artifactIterator")
    if not iterator:
        return ""
    items = iterator.get("items", {})
    if "raw" in items:
        return f"for each of {items['raw']}"
    source = items.get("inputParameter") or items.get("inputArtifact") or ""
    return f"for each of {inputs.get(source, source.removeprefix('pipelinechannel--'))}"


class _Builder:
    def __init__(self, document: dict[str, Any]) -> None:
        self.components: dict[str, Any] = document.get("components", {}) or {}
        self.executors: dict[str, Any] = document.get("deploymentSpec", {}).get("executors", {}) or {}
        self.dag = Dag(name=str(document.get("pipelineInfo", {}).get("name", "pipeline")))

    def _node_kind(self, component_name: str, task: dict[str, Any]) -> NodeKind:
        if task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED":
            return "exit"
        executor_label = self.components.get(component_name, {}).get("executorLabel", "")
        if "importer" in self.executors.get(executor_label, {}):
            return "importer"
        return "task"

    def _input_labels(self, task: dict[str, Any], channel_labels: dict[str, str],
                      display: dict[str, str]) -> dict[str, str]:
        """What each input parameter of a group task stands for, in console names."""
        labels: dict[str, str] = {}
        for name, spec in (task.get("inputs", {}).get("parameters", {}) or {}).items():
            if "taskOutputParameter" in spec:
                producer = spec["taskOutputParameter"].get("producerTask", "")
                key = spec["taskOutputParameter"].get("outputParameterKey", "")
                labels[name] = _output_label(display.get(producer, producer), key)
            elif "componentInputParameter" in spec:
                source = spec["componentInputParameter"]
                labels[name] = channel_labels.get(source, source)
        return labels

    def visit(self, dag: dict[str, Any], path: str, group: str | None, channel_labels: dict[str, str]) -> None:
        tasks: dict[str, Any] = _in_run_order(dag.get("tasks", {}) or {})
        display = {key: str(task.get("taskInfo", {}).get("name", key)) for key, task in tasks.items()}
        ids = {
            key: _safe_id(("g_" if "dag" in self.components.get(task.get("componentRef", {}).get("name", ""), {})
                           else "t_") + f"{path}{key}")
            for key, task in tasks.items()
        }
        for key, task in tasks.items():
            component_name = task.get("componentRef", {}).get("name", "")
            component = self.components.get(component_name, {})
            if "dag" in component:
                inputs = self._input_labels(task, channel_labels, display)
                condition = task.get("triggerPolicy", {}).get("condition", "")
                detail = _readable_condition(condition, inputs) if condition else _loop_detail(task, inputs)
                self.dag.groups.append(
                    DagGroup(
                        group_id=ids[key],
                        label=display[key],
                        kind=_group_kind(component_name),
                        parent=group,
                        condition=detail,
                    )
                )
                self.visit(component["dag"], f"{path}{key}/", ids[key], inputs)
            else:
                self.dag.nodes.append(
                    DagNode(node_id=ids[key], label=display[key], kind=self._node_kind(component_name, task),
                            group=group)
                )
        for key, task in tasks.items():
            exit_task = task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
            for upstream in task.get("dependentTasks", []) or []:
                if upstream in ids:
                    self.dag.edges.append(DagEdge(ids[upstream], ids[key], on_exit=exit_task))


def build_dag(document: dict[str, Any]) -> Dag:
    """The drawable DAG of a compiled spec document. Raises ConfigError when it has no ``root.dag``."""
    root = document.get("root", {}) if isinstance(document, dict) else {}
    if "dag" not in root:
        raise ConfigError("The spec has no root DAG: is it a compiled KFP v2 pipeline (not a single component)?")
    builder = _Builder(document)
    root_inputs = {name: name for name in (root.get("inputDefinitions", {}).get("parameters", {}) or {})}
    builder.visit(root["dag"], "", None, root_inputs)
    return builder.dag


def load_dag(path: str | Path) -> Dag:
    """The DAG of the compiled spec at ``path``."""
    return build_dag(PipelineSpec.load(path).document)


# -- Mermaid ---------------------------------------------------------------------------------------

def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _group_title(group: DagGroup) -> str:
    return f"{group.label}: {group.condition}" if group.condition else group.label


def to_mermaid(dag: Dag) -> str:
    """A Mermaid ``flowchart TD``: groups as subgraphs, importers as parallelograms, exit edges dashed."""
    lines = ["flowchart TD"]
    children, members = dag.nesting()

    def node_line(node: DagNode, indent: str) -> str:
        label = _mermaid_text(node.label)
        shape = {"importer": f'[/"{label}"/]', "exit": f'(["{label}"])'}.get(node.kind, f'["{label}"]')
        return f"{indent}{node.node_id}{shape}"

    def emit(parent: str | None, indent: str) -> None:
        for node in members.get(parent, []):
            lines.append(node_line(node, indent))
        for group in children.get(parent, []):
            lines.append(f'{indent}subgraph {group.group_id}["{_mermaid_text(_group_title(group))}"]')
            emit(group.group_id, indent + "  ")
            lines.append(f"{indent}end")

    emit(None, "  ")
    for edge in dag.edges:
        arrow = " -. on exit .-> " if edge.on_exit else " --> "
        lines.append(f"  {edge.source}{arrow}{edge.target}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ----------------------------------------------------------------------------------

def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(dag: Dag) -> str:
    """A Graphviz digraph: groups as clusters (edges to a group end at its border), exit edges dashed."""
    group_ids = {group.group_id for group in dag.groups}
    lines = [
        f'digraph "{_dot_text(dag.name)}" {{',
        "  compound=true;",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor="#e8f0fe", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    children, members = dag.nesting()
    styles = {"importer": ', shape=parallelogram, fillcolor="#fef7e0"', "exit": ', fillcolor="#fce8e6"'}

    def emit(parent: str | None, indent: str) -> None:
        for node in members.get(parent, []):
            lines.append(f'{indent}{node.node_id} [label="{_dot_text(node.label)}"{styles.get(node.kind, "")}];')
        for group in children.get(parent, []):
            style = "dashed" if group.kind in ("condition", "branches") else "solid"
            lines.append(f"{indent}subgraph cluster_{group.group_id} {{")
            lines.append(f'{indent}  label="{_dot_text(_group_title(group))}";')
            lines.append(f"{indent}  style={style};")
            # An invisible anchor lets edges start or end at the group's border (compound=true).
            lines.append(f"{indent}  {group.group_id} [shape=point, style=invis, width=0, height=0, label=\"\"];")
            emit(group.group_id, indent + "  ")
            lines.append(f"{indent}}}")

    emit(None, "  ")
    for edge in dag.edges:
        attributes = []
        if edge.source in group_ids:
            attributes.append(f"ltail=cluster_{edge.source}")
        if edge.target in group_ids:
            attributes.append(f"lhead=cluster_{edge.target}")
        if edge.on_exit:
            attributes += ["style=dashed", 'label="on exit"']
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(path: str | Path, fmt: str = "mermaid") -> str:
    """The DAG of the spec at ``path`` in ``fmt`` (``mermaid`` or ``dot``). ConfigError for another format."""
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown DAG format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    dag = load_dag(path)
    return to_mermaid(dag) if fmt == "mermaid" else to_dot(dag)
