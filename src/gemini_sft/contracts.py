"""One contract per stage: a stage's settings are one typed record, described once.

A stage record is a frozen dataclass whose fields are made with :func:`setting`;
each field carries a one-line description. From that one place come:

* the ``Args:`` section of the KFP component's docstring (:func:`describe_component`),
  which KFP turns into the parameter descriptions the Vertex console shows;
* the pipeline function's docstring (the pipeline parameters);
* the CLI options of the stage's command (:func:`add_cli_options`, :func:`record_from_cli`);
* the checks the contract tests make (:func:`signature_problems`): a component's
  parameters equal its record's fields, with the same types and defaults.

The component signatures stay explicit Python (KFP reads them, the console shows
them); the tests keep them equal to the records.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

R = TypeVar("R")

_DESCRIPTION = "description"
_PIPELINE_NAME = "pipeline_name"
_CLI = "cli"
_CHOICES = "choices"


def setting(
    default: Any,
    description: str,
    *,
    pipeline_name: str | None = None,
    cli: bool = True,
    choices: Iterable[str] | None = None,
) -> Any:
    """A field of a stage record.

    Args:
        default: the default value (a dict or list default is copied for each record).
        description: one line saying what the setting does, as the console shows it.
        pipeline_name: the pipeline parameter feeding it, when it differs from the field name.
        cli: whether the stage's CLI command offers it as an option.
        choices: the allowed values of a string setting (the CLI checks them too).
    """
    if "\n" in description:
        raise ValueError("a setting's description is one line (KFP's docstring parser needs it)")
    metadata = {
        _DESCRIPTION: description,
        _PIPELINE_NAME: pipeline_name,
        _CLI: cli,
        _CHOICES: tuple(choices) if choices is not None else None,
    }
    if isinstance(default, (dict, list)):
        copy = type(default)(default)
        return dataclasses.field(default_factory=lambda: type(copy)(copy), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class SettingField:
    """One described setting of a record."""

    name: str
    type: Any
    default: Any
    description: str
    pipeline_name: str
    cli: bool
    choices: tuple[str, ...] | None


def settings_of(record_type: type) -> list[SettingField]:
    """The described fields of a stage record, in declaration order.

    Raises TypeError when a field was not made with :func:`setting` (no description).
    """
    hints = typing.get_type_hints(record_type)
    result = []
    for item in dataclasses.fields(record_type):
        if _DESCRIPTION not in item.metadata:
            raise TypeError(f"{record_type.__name__}.{item.name} has no description: declare it with setting()")
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = inspect.Parameter.empty
        result.append(
            SettingField(
                name=item.name,
                type=hints[item.name],
                default=default,
                description=item.metadata[_DESCRIPTION],
                pipeline_name=item.metadata[_PIPELINE_NAME] or item.name,
                cli=item.metadata[_CLI],
                choices=item.metadata[_CHOICES],
            )
        )
    return result


def record_from_values(record_type: type[R], values: Mapping[str, Any]) -> R:
    """A record built from the entries of ``values`` named like its fields (e.g. a component's ``locals()``)."""
    names = [item.name for item in dataclasses.fields(record_type)]  # type: ignore[arg-type]
    return record_type(**{name: values[name] for name in names if name in values})


def args_section(entries: Iterable[tuple[str, str]]) -> str:
    """A Google-style ``Args:`` section, one line per entry."""
    lines = ["Args:"]
    for name, description in entries:
        lines.append(f"    {name}: {description}")
    return "\n".join(lines)


def describe_component(
    summary: str,
    records: Iterable[type] = (),
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator: give a component function a docstring built from its records' descriptions.

    Args:
        summary: what the component does (first line, then any detail: inputs, outputs, failures).
        records: the stage records whose fields are parameters of the component.
        inputs: descriptions of the other parameters (artifacts, wiring such as ``pipeline_run``).
        outputs: descriptions of the output artifacts and returned values.
    """
    record_list = list(records)

    def decorate(func: Callable) -> Callable:
        entries: dict[str, str] = dict(inputs or {})
        for record in record_list:
            for item in settings_of(record):
                entries[item.name] = item.description
        order = list(inspect.signature(func).parameters)
        ordered = [(name, entries[name]) for name in order if name in entries]
        ordered += [(name, text) for name, text in entries.items() if name not in order]
        text = inspect.cleandoc(summary) + "\n\n" + args_section(ordered) + "\n"
        if outputs:
            # KFP reads output descriptions from the Returns section (output artifacts and returned values).
            text += "\n" + args_section(outputs.items()).replace("Args:", "Returns:", 1) + "\n"
        func.__doc__ = text
        return func

    return decorate


def _plain_type(annotation: Any) -> Any:
    """``dict[str, str]`` -> dict, ``list[str]`` -> list; other annotations unchanged."""
    origin = typing.get_origin(annotation)
    return origin if origin in (dict, list) else annotation


def signature_problems(func: Callable, record_types: Iterable[type], others: Iterable[str] = ()) -> list[str]:
    """How a component's parameters differ from its records' fields (empty when they agree).

    Args:
        func: the component function (its Python signature).
        record_types: the stage records it takes.
        others: its parameters that are not settings (artifacts, wiring such as ``pipeline_run``).
    """
    parameters = inspect.signature(func).parameters
    hints = typing.get_type_hints(func, include_extras=False)
    expected: dict[str, SettingField] = {}
    for record in record_types:
        for item in settings_of(record):
            expected[item.name] = item
    problems = []
    other_names = set(others)
    for name in parameters:
        if name not in expected and name not in other_names:
            problems.append(f"{func.__name__}: parameter {name!r} is in no record")
    for name, item in expected.items():
        if name not in parameters:
            problems.append(f"{func.__name__}: record field {name!r} is not a parameter")
            continue
        parameter = parameters[name]
        if _plain_type(hints.get(name)) != _plain_type(item.type):
            problems.append(f"{func.__name__}: {name!r} is {hints.get(name)!r}, the record says {item.type!r}")
        if parameter.default != item.default:
            problems.append(
                f"{func.__name__}: {name!r} defaults to {parameter.default!r}, the record says {item.default!r}"
            )
    return problems


CHANNEL = "pipelinechannel--"


def find_task(spec: Mapping[str, Any], task: str) -> Mapping[str, Any] | None:
    """A task of a compiled spec by name, in the root DAG or a condition's DAG; None when there is none."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec.get("components", {}).values() if "dag" in c)]
    return next((dag["tasks"][task] for dag in dags if task in dag.get("tasks", {})), None)


def pipeline_wiring_problems(
    spec: Mapping[str, Any], task: str, record_types: Iterable[type], constants: Iterable[str] = ()
) -> list[str]:
    """How a compiled pipeline's call of one task fails to pass every record field from its pipeline parameter.

    Args:
        spec: the compiled pipeline spec (the YAML loaded as a dict).
        task: the task's name in the root DAG (e.g. ``clean-data``).
        record_types: the stage records whose every field the pipeline must pass.
        constants: fields the pipeline sets to a constant or a task output on purpose.
    """
    found = find_task(spec, task)
    if found is None:
        return [f"the pipeline has no task {task!r}"]
    given = found.get("inputs", {}).get("parameters", {})
    skip = set(constants)
    problems = []
    for record in record_types:
        for item in settings_of(record):
            if item.name in skip:
                continue
            wiring = given.get(item.name)
            if wiring is None:
                problems.append(f"{task}: the pipeline does not pass {item.name!r}")
            # inside a condition a pipeline parameter reaches the task as pipelinechannel--NAME
            elif wiring.get("componentInputParameter") not in (item.pipeline_name, CHANNEL + item.pipeline_name):
                problems.append(
                    f"{task}: {item.name!r} should come from pipeline parameter {item.pipeline_name!r}, "
                    f"got {wiring}"
                )
    return problems


_CLI_TYPES = {int: int, float: float, str: str}


def add_cli_options(parser: argparse.ArgumentParser, record_type: type, skip: Iterable[str] = ()) -> None:
    """Add an ``--option`` per CLI-visible field of ``record_type``, with its description and default.

    Booleans become flags (``--mask-pii`` / ``--no-mask-pii``); dicts and lists take JSON.
    """
    skipped = set(skip)
    for item in settings_of(record_type):
        if not item.cli or item.name in skipped:
            continue
        flag = "--" + item.name.replace("_", "-")
        help_text = f"{item.description} (default: {item.default!r})"
        if item.type is bool:
            parser.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction,
                                default=item.default, help=help_text)
        elif _plain_type(item.type) in (dict, list):
            import json

            parser.add_argument(flag, dest=item.name, type=json.loads, default=item.default,
                                help=help_text + "; JSON")
        else:
            parser.add_argument(flag, dest=item.name, type=_CLI_TYPES.get(item.type, str),
                                default=item.default, choices=item.choices, help=help_text)


def record_from_cli(record_type: type[R], args: argparse.Namespace) -> R:
    """The record of the options :func:`add_cli_options` added (fields without an option keep their default)."""
    return record_from_values(record_type, vars(args))


def pipeline_parameter_descriptions(record_types: Iterable[type]) -> dict[str, str]:
    """Pipeline parameter name -> description, from the records feeding the pipeline."""
    result: dict[str, str] = {}
    for record in record_types:
        for item in settings_of(record):
            result.setdefault(item.pipeline_name, item.description)
    return result


def stage_arguments(
    record_types: Iterable[type],
    parameters: Mapping[str, Any],
    wired: Mapping[str, Any] | None = None,
    keep_defaults: Iterable[str] = (),
) -> dict[str, Any]:
    """The keyword arguments a pipeline passes a stage's component: every record field, by name.

    Args:
        record_types: the stage records the component takes.
        parameters: the pipeline function's parameters (its ``locals()``), by pipeline parameter name.
        wired: values for fields fed from elsewhere (a task output, the run name), by field name.
        keep_defaults: fields the pipeline leaves at the component's default on purpose.

    Raises:
        KeyError naming the field, when a field has neither a pipeline parameter nor a wired value
        (so a field added to a record but not to the pipeline fails when the pipeline is built).
    """
    given = dict(wired or {})
    skipped = set(keep_defaults)
    arguments: dict[str, Any] = {}
    for record in record_types:
        for item in settings_of(record):
            if item.name in given:
                arguments[item.name] = given[item.name]
            elif item.name not in skipped:
                if item.pipeline_name not in parameters:
                    raise KeyError(
                        f"{record.__name__}.{item.name}: the pipeline has no parameter {item.pipeline_name!r}"
                    )
                arguments[item.name] = parameters[item.pipeline_name]
    return arguments


def pipeline_signature(
    own_record: type,
    stage_records: Iterable[type],
    exclude: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> inspect.Signature:
    """The pipeline function's signature: one parameter per record field, under its pipeline name.

    Args:
        own_record: the pipeline's own parameters; where a stage shares one (e.g. project), this one rules.
        stage_records: every stage record.
        exclude: stage record fields that are not pipeline parameters (wired from task outputs, or left at their default).
        defaults: pipeline parameter name -> a default that replaces the record's (e.g. compile-time recipients).

    Raises:
        TypeError naming the parameter, when two stage records declare one pipeline parameter with different
        types or defaults (the stages would disagree on what the pipeline passes them).
    """
    skipped = set(exclude)
    overrides = dict(defaults or {})
    chosen: dict[str, SettingField] = {item.pipeline_name: item for item in settings_of(own_record)}
    own = set(chosen)
    for record in stage_records:
        for item in settings_of(record):
            if item.name in skipped or item.pipeline_name in own:
                continue
            earlier = chosen.get(item.pipeline_name)
            if earlier is None:
                chosen[item.pipeline_name] = item
                continue
            if _plain_type(earlier.type) != _plain_type(item.type) or earlier.default != item.default:
                raise TypeError(
                    f"pipeline parameter {item.pipeline_name!r}: {record.__name__}.{item.name} is "
                    f"{item.type!r} = {item.default!r}, an earlier record says {earlier.type!r} = {earlier.default!r}"
                )
    parameters = []
    for name, item in chosen.items():
        default = overrides.get(name, item.default)
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                            annotation=_plain_type(item.type)))
    parameters.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # required ones first, order kept
    return inspect.Signature(parameters, return_annotation=None)


def with_signature(signature: inspect.Signature) -> Callable[[Callable], Callable]:
    """Decorator: give a ``(*args, **kwargs)`` function ``signature`` (KFP reads it to build the pipeline's inputs)."""

    def decorate(func: Callable) -> Callable:
        func.__signature__ = signature  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()} | {"return": None}
        return func

    return decorate
