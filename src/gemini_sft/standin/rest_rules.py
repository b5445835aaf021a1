"""Vertex AI's REST mapping (v1, and v1beta1 tuning), read from google-cloud-aiplatform, and checks of bodies.

Google's REST transports (``google/cloud/aiplatform_v1/services/*/transports/rest.py``,
built on ``rest_base.py``) hold, per RPC, the HTTP rules of ``_get_http_options``
(method, URI template, body field) and, in the ``__call__`` signature, the
request and response message types. :func:`rest_rules` derives the table from
those classes on first use (so it is always the installed SDK's mapping) and
:func:`find_rule` matches a request to it. The same holds for every API in
:data:`CHECKED_APIS` whose generated client is installed (Resource Manager v3
comes with google-cloud-aiplatform); routes of other APIs cannot be checked.

:func:`check_request` refuses what Vertex refuses before any handler runs:
a body (or query parameter) naming a field the request message does not have,
and a body that does not parse into it (``json_format.ParseDict`` with unknown
fields refused: wrong types, bad enum values, two members of one oneof). The
messages are worded as Google's front end words them, e.g.
``Invalid JSON payload received. Unknown name "outputUri" at 'tuning_job': Cannot find field.``
:func:`check_response` applies the same parse to a response body.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import pkgutil
import re
from dataclasses import dataclass
from typing import Any, Mapping

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gemini_sft.standin.routing import AIPLATFORM_V1, StandInError

log = logging.getLogger(__name__)

# Vertex AI v1beta1: google-genai's default for Vertex, and the only version with open-model tuning fields.
AIPLATFORM_V1BETA1 = "aiplatform.v1beta1"
# The APIs whose REST mapping and messages ship with the project's dependencies: api name -> services package.
CHECKED_APIS: dict[str, str] = {
    AIPLATFORM_V1: "google.cloud.aiplatform_v1.services",
    AIPLATFORM_V1BETA1: "google.cloud.aiplatform_v1beta1.services",
    "cloudresourcemanager.v3": "google.cloud.resourcemanager_v3.services",
}
# APIs of which the stand-in serves only some services: only their mappings are read (v1beta1 has ~60).
CHECKED_SERVICES: dict[str, frozenset[str]] = {
    AIPLATFORM_V1BETA1: frozenset({"gen_ai_tuning_service"}),
}
# Parameters every Google API accepts in the query string besides the request's own fields.
SYSTEM_QUERY_PARAMETERS = frozenset(
    {"alt", "$alt", "key", "prettyPrint", "$prettyPrint", "fields", "$fields", "quotaUser", "callback",
     "upload_protocol", "uploadType", "access_token", "$callback", "$ct", "$outputDefaults"}
)
# Well-known types whose JSON form is not an object of their fields: their content is not walked.
_OPAQUE_TYPES = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any",
     "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
     "google.protobuf.Empty", "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
     "google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value",
     "google.protobuf.UInt32Value", "google.protobuf.BoolValue", "google.protobuf.StringValue",
     "google.protobuf.BytesValue"}
)
# Output fields Vertex sends and google-genai reads that the installed v1 protos do not have yet: a response
# may carry them (they are taken out before the parse); a request never may. google-genai 2.34 reads
# TuningJob.tuningJobState, which google-cloud-aiplatform 1.165's v1 TuningJob lacks.
NEWER_OUTPUT_FIELDS: dict[str, frozenset[str]] = {
    "google.cloud.aiplatform.v1.TuningJob": frozenset({"tuningJobState"}),
    "google.cloud.aiplatform.v1beta1.TuningJob": frozenset({"tuningJobState"}),
}
_VARIABLE = re.compile(r"\{(?P<name>[\w.]+)(?:=(?P<pattern>[^}]+))?\}")


@dataclass(frozen=True)
class RestRule:
    """One HTTP binding of one v1 RPC.

    ``body`` is ``"*"`` (the whole request message is the body), a request
    field name (that field is the body) or ``""`` (no body). ``request_type``
    and ``response_type`` are protobuf message classes (``response_type`` is
    None for RPCs that answer google.protobuf.Empty).
    """

    service: str
    rpc: str
    method: str
    uri_template: str
    body: str
    request_type: type[Message]
    response_type: type[Message] | None
    regex: re.Pattern[str]
    segment_count: int

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.rpc}"


def _template_regex(template: str) -> re.Pattern[str]:
    """A whole-path regex for a google.api.http URI template (``*`` one segment, ``**`` any)."""

    def segment_pattern(pattern: str) -> str:
        parts = []
        for segment in pattern.split("/"):
            if segment == "**":
                parts.append(r"[^:]+")
            elif segment == "*":
                parts.append(r"[^/:]+")
            else:
                parts.append(re.escape(segment))
        return "/".join(parts)

    regex = ""
    position = 0
    for match in _VARIABLE.finditer(template):
        regex += re.escape(template[position : match.start()])
        regex += "(?:" + segment_pattern(match.group("pattern") or "*") + ")"
        position = match.end()
    regex += re.escape(template[position:])
    return re.compile(regex)


def _segment_count(template: str) -> int:
    """Number of ``/`` in the paths a template matches (templates of this API use no ``**``)."""
    return _VARIABLE.sub(lambda m: m.group("pattern") or "*", template).count("/")


def _pb_class(annotation: Any) -> type[Message] | None:
    """The protobuf class behind a proto-plus or protobuf annotation (None for ``None``/empty)."""
    if annotation in (None, inspect.Signature.empty, type(None)):
        return None
    if inspect.isclass(annotation) and issubclass(annotation, Message):
        return annotation
    pb = getattr(annotation, "pb", None)
    if callable(pb):
        return pb()
    return None


def _service_rules(module: Any, service: str) -> list[RestRule]:
    rules: list[RestRule] = []
    for class_name, transport in vars(module).items():
        if not (class_name.endswith("RestTransport") and inspect.isclass(transport)) or class_name.startswith("_"):
            continue
        for attribute, call_class in vars(transport).items():
            if not (inspect.isclass(call_class) and "__call__" in vars(call_class)):
                continue
            options = getattr(call_class, "_get_http_options", None)
            if options is None:
                continue
            signature = inspect.signature(call_class.__call__)
            request_type = _pb_class(signature.parameters["request"].annotation)
            if request_type is None:
                continue
            response_type = _pb_class(signature.return_annotation)
            for option in options():
                rules.append(
                    RestRule(
                        service=service,
                        rpc=attribute.lstrip("_"),
                        method=option["method"].upper(),
                        uri_template=option["uri"],
                        body=option.get("body", ""),
                        request_type=request_type,
                        response_type=response_type,
                        regex=_template_regex(option["uri"]),
                        segment_count=_segment_count(option["uri"]),
                    )
                )
    return rules


@functools.lru_cache(maxsize=None)
def rest_rules(api: str = AIPLATFORM_V1) -> tuple[RestRule, ...]:
    """Every HTTP rule of every service of one API of :data:`CHECKED_APIS` (read once); KeyError for others."""
    services_package = CHECKED_APIS[api]
    package = importlib.import_module(services_package)
    rules: dict[tuple[str, str], RestRule] = {}
    served = CHECKED_SERVICES.get(api)
    for service in pkgutil.iter_modules(package.__path__):
        if served is not None and service.name not in served:
            continue
        module = importlib.import_module(f"{services_package}.{service.name}.transports.rest")
        for rule in _service_rules(module, service.name):
            # Every service repeats the operations / locations / IAM mixins: keep one copy.
            rules.setdefault((rule.method, rule.uri_template), rule)
    # A rule with a custom verb (":cancel") must win over a plain resource rule of the same prefix.
    ordered = sorted(rules.values(), key=lambda r: (":" not in r.uri_template.rsplit("/", 1)[-1], r.uri_template))
    log.debug("read %d REST rules of %s", len(ordered), api)
    return tuple(ordered)


@functools.lru_cache(maxsize=None)
def _rules_by_shape(api: str) -> dict[tuple[str, int], tuple[RestRule, ...]]:
    index: dict[tuple[str, int], list[RestRule]] = {}
    for rule in rest_rules(api):
        index.setdefault((rule.method, rule.segment_count), []).append(rule)
    return {key: tuple(value) for key, value in index.items()}


def find_rule(method: str, path: str, api: str = AIPLATFORM_V1) -> RestRule | None:
    """The rule of ``api`` serving ``method path`` (path without query string), or None when it has none."""
    for rule in _rules_by_shape(api).get((method.upper(), path.count("/")), ()):
        if rule.regex.fullmatch(path):
            return rule
    return None


# -- request and response bodies ---------------------------------------------------------------------


def _field_by_json_key(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    field = descriptor.fields_by_name.get(key)
    if field is not None:
        return field
    for candidate in descriptor.fields:
        if candidate.json_name == key:
            return candidate
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def unknown_fields(value: Any, descriptor: Descriptor, path: str = "") -> list[tuple[str, str]]:
    """``(name, path)`` of every JSON key that names no field of the message, depth first.

    ``path`` is the snake_case field path of the enclosing message, as Google's
    error messages give it (``tuning_job.supervised_tuning_spec``,
    ``contents[0].parts[1]``). Map keys are free; well-known types are not walked.
    """
    if not isinstance(value, dict) or descriptor.full_name in _OPAQUE_TYPES:
        return []
    found: list[tuple[str, str]] = []
    for key, item in value.items():
        field = _field_by_json_key(descriptor, key)
        if field is None:
            found.append((key, path))
            continue
        if field.message_type is None:
            continue
        child_path = _join(path, field.name)
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is not None and isinstance(item, dict):
                for map_key, map_value in item.items():
                    found += unknown_fields(map_value, value_field.message_type, f"{child_path}[{map_key}]")
        elif field.label == FieldDescriptor.LABEL_REPEATED and isinstance(item, list):
            for index, element in enumerate(item):
                found += unknown_fields(element, field.message_type, f"{child_path}[{index}]")
        else:
            found += unknown_fields(item, field.message_type, child_path)
    return found


def _unknown_name_message(name: str, path: str, binding: str) -> str:
    where = f" at '{path}'" if path else ""
    return f'Invalid JSON payload received. Unknown name "{name}"{where}: {binding}.'


def parse_message(body: Any, message_class: type[Message], path: str = "") -> Message:
    """Parse a JSON body into a message as Vertex does; StandInError(400 INVALID_ARGUMENT) when it does not.

    Args:
        body: the decoded JSON value.
        message_class: the protobuf message class it must be.
        path: the snake_case field path of the body within the request (``tuning_job``), for messages.
    """
    if not isinstance(body, dict):
        where = f" at '{path}'" if path else ""
        raise StandInError(
            400, f"Invalid JSON payload received. Expected an object{where}, got {type(body).__name__}."
        )
    unknown = unknown_fields(body, message_class.DESCRIPTOR, path)
    if unknown:
        raise StandInError(
            400, "\n".join(_unknown_name_message(name, where, "Cannot find field") for name, where in unknown)
        )
    message = message_class()
    try:
        json_format.ParseDict(body, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        where = f" at '{path}'" if path else ""
        raise StandInError(400, f"Invalid JSON payload received{where}. {str(exc).rstrip('.')}.") from None
    return message


def _query_field(descriptor: Descriptor, dotted: str) -> bool:
    """Whether a query parameter (``pageSize``, ``update_mask``, ``a.b``) names a field of the request."""
    for part in dotted.split("."):
        if descriptor is None:
            return False
        field = _field_by_json_key(descriptor, part)
        if field is None:
            return False
        descriptor = field.message_type
    return True


def check_request(rule: RestRule, query: Mapping[str, str], body: Any) -> None:
    """Refuse a request Vertex would refuse for its shape; StandInError(400) naming the field.

    Args:
        rule: the v1 rule the request matched.
        query: its query parameters.
        body: its decoded JSON body (None when empty).
    """
    request_descriptor = rule.request_type.DESCRIPTOR
    for name in query:
        if name not in SYSTEM_QUERY_PARAMETERS and not _query_field(request_descriptor, name):
            raise StandInError(
                400,
                _unknown_name_message(name, "", "Cannot bind query parameter")[:-1]
                + f". Field '{name}' could not be found in request message.",
            )
    if not rule.body:
        if body not in (None, {}):
            raise StandInError(400, f"Invalid JSON payload received. {rule.rpc} takes no request body.")
        return
    if body is None:
        body = {}
    if rule.body == "*":
        parse_message(body, rule.request_type)
        return
    field = request_descriptor.fields_by_name[rule.body]
    parse_message(body, GetMessageClass(field.message_type), rule.body)


def _filtered_fields(value: Any, descriptor: Descriptor, *, newer: bool, unknown: bool) -> Any:
    """``value`` with, at every depth, its newer output fields kept or not (``newer``), and keys naming no
    field of the message kept or not (``unknown``)."""
    if not isinstance(value, dict) or descriptor.full_name in _OPAQUE_TYPES:
        return value
    newer_names = NEWER_OUTPUT_FIELDS.get(descriptor.full_name, frozenset())
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if key in newer_names:
            if newer:
                kept[key] = item
            continue
        field = _field_by_json_key(descriptor, key)
        if field is None and not unknown:
            continue
        if field is not None and field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if field.label == FieldDescriptor.LABEL_REPEATED and isinstance(item, list):
                item = [_filtered_fields(element, field.message_type, newer=newer, unknown=unknown)
                        for element in item]
            else:
                item = _filtered_fields(item, field.message_type, newer=newer, unknown=unknown)
        kept[key] = item
    return kept


def without_newer_output_fields(value: Any, descriptor: Descriptor) -> Any:
    """``value`` without the fields of :data:`NEWER_OUTPUT_FIELDS`, wherever their message appears in it."""
    return _filtered_fields(value, descriptor, newer=False, unknown=True)


def as_message_fields(value: Any, descriptor: Descriptor) -> Any:
    """``value`` with only the fields of the message (and its newer output fields), at every depth.

    What one API version answers for a resource another version wrote: the fields it does not have are
    left out (a job created through v1beta1 read through v1 has no ``outputUri``).
    """
    return _filtered_fields(value, descriptor, newer=True, unknown=False)


def response_problem(rule: RestRule, status: int, body: Any) -> str | None:
    """Why a response body is not what Vertex sends for the rule, or None when it parses.

    A success must parse into the rule's response message (unknown fields
    refused; ``{}`` for Empty); an error must be ``{"error": {"code", "message", "status"}}``.
    """
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if not (isinstance(error, dict) and isinstance(error.get("code"), int)
                and isinstance(error.get("message"), str) and isinstance(error.get("status"), str)):
            return 'not a Google error body ({"error": {"code", "message", "status"}})'
        return None
    if rule.response_type is None:
        return None if body in (None, {}) else "not empty (google.protobuf.Empty)"
    try:
        parse_message(without_newer_output_fields(body, rule.response_type.DESCRIPTOR), rule.response_type)
    except StandInError as exc:
        return f"not a {rule.response_type.DESCRIPTOR.full_name}: {exc.message}"
    return None
