"""The offline stand-in's copy of Vertex's prebuilt vLLM serving container: what its predict route takes and gives.

The container's predict route (``/generate``, reached through an endpoint's
``rawPredict``) takes ``{"instances": [instance], "parameters"?}``. An instance is

* a chat request: ``{"@requestFormat": "chatCompletions", "messages": [...],
  "max_tokens", "temperature", ...}``; the container applies the model's chat
  template and answers ``{"predictions": <OpenAI chat completion>}``
  (``choices[0].message.content``, ``finish_reason`` ``stop`` or ``length``);
* a plain prompt: ``{"prompt", "max_tokens", "temperature", "raw_response", ...}``,
  generated as is; ``predictions`` is a list of strings, each
  ``"Prompt:\\n<prompt>\\nOutput:\\n<text>"`` unless ``raw_response`` is true.

Fields vLLM does not take as sampling parameters are refused (400), as the
container refuses them. The stand-in generates greedily whatever the
temperature, one chat request per call, and computes no log-probabilities:
``logprobs`` is refused rather than answered with none.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from gemini_sft.standin.routing import StandInError

CHAT_FORMAT = "chatCompletions"
REQUEST_FORMAT = "@requestFormat"
_SAMPLING = frozenset({"max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "n"})
_CHAT_FIELDS = _SAMPLING | {"@requestFormat", "messages", "logprobs", "top_logprobs"}
_PROMPT_FIELDS = _SAMPLING | {"prompt", "raw_response"}
_ROLES = frozenset({"system", "user", "assistant"})
_DEFAULT_MAX_TOKENS = 16  # vLLM's SamplingParams default
_COMPLETION_IDS = itertools.count(1)


def parse_prediction_body(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The instances of a predict-route body, each checked; StandInError(400) naming what is wrong."""
    unknown = sorted(set(body) - {"instances", "parameters"})
    if unknown:
        raise StandInError(400, f"the vLLM container's predict route takes {{\"instances\": [...]}}; unknown "
                                f"field(s) {unknown}.")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or not all(isinstance(i, dict) for i in instances):
        raise StandInError(400, "\"instances\" must be a non-empty list of objects.")
    chat = [i for i in instances if REQUEST_FORMAT in i]
    if chat and len(instances) > 1:
        raise StandInError(400, "a chatCompletions request takes exactly one instance.")
    for index, instance in enumerate(instances):
        _check_instance(instance, f"instances[{index}]")
    return instances


def _check_instance(instance: dict[str, Any], where: str) -> None:
    chat = REQUEST_FORMAT in instance
    if chat and instance[REQUEST_FORMAT] != CHAT_FORMAT:
        raise StandInError(400, f"{where}.@requestFormat must be {CHAT_FORMAT!r}, got {instance[REQUEST_FORMAT]!r}.")
    unknown = sorted(set(instance) - (_CHAT_FIELDS if chat else _PROMPT_FIELDS))
    if unknown:
        raise StandInError(400, f"{where}: unknown field(s) {unknown} (vLLM sampling parameters: "
                                f"{sorted(_SAMPLING)}).")
    max_tokens = instance.get("max_tokens", _DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise StandInError(400, f"{where}.max_tokens must be a positive integer, got {max_tokens!r}.")
    temperature = instance.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise StandInError(400, f"{where}.temperature must be a number >= 0, got {temperature!r}.")
    if instance.get("n", 1) != 1:
        raise StandInError(400, f"{where}.n: this stand-in answers one choice per request.")
    if chat:
        if instance.get("logprobs") or instance.get("top_logprobs"):
            raise StandInError(400, f"{where}.logprobs: this stand-in computes no log-probabilities.")
        _check_messages(instance.get("messages"), where)
    elif not isinstance(instance.get("prompt"), str) or not instance["prompt"]:
        raise StandInError(400, f"{where} needs a non-empty \"prompt\" string (or @requestFormat chatCompletions "
                                "with \"messages\").")


def _check_messages(messages: Any, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise StandInError(400, f"{where}.messages must be a non-empty list.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise StandInError(400, f"{where}.messages[{index}].role must be one of {sorted(_ROLES)}.")
        if not isinstance(message.get("content"), (str, list)):
            raise StandInError(400, f"{where}.messages[{index}].content must be a string or a list of parts.")
    if messages[-1]["role"] != "user":
        raise StandInError(400, f"{where}.messages must end with a user message.")


def _message_text(content: str | list[Any], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise StandInError(400, f"{where}: this stand-in's model reads text parts only.")
        texts.append(part["text"])
    return "".join(texts)


def answer_instances(generator: Any, instances: list[dict[str, Any]], model: str) -> Any:
    """The ``predictions`` of checked instances, generated by ``generator`` (an ``AdapterGenerator``)."""
    first = instances[0]
    if REQUEST_FORMAT in first:
        messages = [{"role": m["role"], "content": _message_text(m["content"], f"messages[{i}]")}
                    for i, m in enumerate(first["messages"])]
        answer = generator.generate(generator.chat_prompt(messages), first.get("max_tokens", _DEFAULT_MAX_TOKENS))
        return {
            "id": f"chatcmpl-standin-{next(_COMPLETION_IDS)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": answer.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                      "total_tokens": answer.prompt_tokens + answer.completion_tokens},
        }
    predictions = []
    for instance in instances:
        answer = generator.generate(instance["prompt"], instance.get("max_tokens", _DEFAULT_MAX_TOKENS))
        raw = instance.get("raw_response", False)
        predictions.append(answer.text if raw else f"Prompt:\n{instance['prompt'].strip()}\nOutput:\n{answer.text}")
    return predictions
