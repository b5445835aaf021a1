"""Pipeline parameter values given on a command line (``NAME=VALUE``), typed by the pipeline's own spec."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from gemini_sft.errors import ConfigError

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def split_assignment(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (name, raw value); ConfigError when there is no ``=`` or no name."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"{text!r} is not NAME=VALUE, e.g. epochs=5")
    return name.strip(), raw


def coerce_value(name: str, raw: str, parameter_type: str) -> Any:
    """Convert a command-line string to the spec's type (STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, STRUCT, LIST).

    Raises ConfigError naming the parameter, the expected type and an example.
    """
    text = raw.strip()
    try:
        if parameter_type == "STRING":
            return raw
        if parameter_type == "NUMBER_INTEGER":
            return int(text)
        if parameter_type == "NUMBER_DOUBLE":
            return float(text)
        if parameter_type == "BOOLEAN":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if parameter_type in ("STRUCT", "LIST"):
            value = json.loads(text)
            expected = dict if parameter_type == "STRUCT" else list
            if not isinstance(value, expected):
                raise ValueError(text)
            return value
    except (ValueError, json.JSONDecodeError) as exc:
        examples = {
            "NUMBER_INTEGER": "an integer, e.g. 3",
            "NUMBER_DOUBLE": "a number, e.g. 0.5",
            "BOOLEAN": "true or false",
            "STRUCT": 'a JSON object, e.g. {"team": "support"}',
            "LIST": 'a JSON list, e.g. ["a@example.com"]',
        }
        raise ConfigError(f"Parameter {name!r} must be {examples[parameter_type]}; got {raw!r}.") from exc
    raise ConfigError(f"Parameter {name!r} has a type this tool does not know: {parameter_type}.")


def parse_assignments(assignments: Iterable[str], parameter_types: Mapping[str, str]) -> dict[str, Any]:
    """Typed values for ``NAME=VALUE`` strings; unknown names are a ConfigError listing the known ones."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, raw = split_assignment(assignment)
        if name not in parameter_types:
            known = ", ".join(sorted(parameter_types))
            raise ConfigError(f"The pipeline has no parameter {name!r}. Its parameters are: {known}.")
        values[name] = coerce_value(name, raw, parameter_types[name])
    return values


def pipeline_parameter_types(pipeline: Any) -> dict[str, str]:
    """Parameter name -> spec type (e.g. NUMBER_INTEGER) of a KFP pipeline object."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    parameters = pipeline.pipeline_spec.root.input_definitions.parameters
    return {
        name: pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(p.parameter_type)
        for name, p in parameters.items()
    }
