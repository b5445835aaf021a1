"""Asking an open model served by Vertex's prebuilt vLLM container: the request and the answer, as JSON.

The container (``pytorch-vllm-serve``, predict route ``/generate``) takes a
Vertex prediction body, ``{"instances": [instance]}``, and answers
``{"predictions": ...}``. An instance is either

* a chat request, ``{"@requestFormat": "chatCompletions", "messages": [...],
  "max_tokens", "temperature"}``: the container applies the model's chat
  template and answers with an OpenAI chat completion
  (``choices[0].message.content``, ``choices[0].finish_reason`` ``stop`` or
  ``length``, ``logprobs`` only when asked for and returned); or
* a plain prompt, ``{"prompt", "max_tokens", "temperature", "raw_response"}``:
  the text is generated as is (so it must be rendered the way the training
  did), and the prediction is the generated string (``raw_response`` true;
  else ``"Prompt:\\n...\\nOutput:\\n..."``), with no finish reason.

The serving client sends chat requests through the endpoint's ``rawPredict``
(the body goes to the container unchanged). This module builds that body and
reads the answer into a :class:`ModelReply`; it calls nothing itself.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from gemini_sft.errors import GenerationCallError
from gemini_sft.serving.fallback import MAX_TOKENS_FINISH_REASON
from gemini_sft.serving.reply import ModelReply, ReplyRequest

CHAT_REQUEST_FORMAT = "chatCompletions"
REQUEST_FORMAT_KEY = "@requestFormat"
# OpenAI finish reasons -> the Gemini names the fallback rules read.
_FINISH_REASONS = {"stop": "STOP", "length": MAX_TOKENS_FINISH_REASON, "content_filter": "SAFETY"}


def chat_messages_of(request: ReplyRequest) -> list[dict[str, str]]:
    """The request as chat messages: the system instruction (when set), then the user's question."""
    messages = [{"role": "system", "content": request.system_instruction}] if request.system_instruction else []
    return [*messages, {"role": "user", "content": request.prompt}]


def chat_request_body(request: ReplyRequest) -> dict[str, Any]:
    """The prediction body of a chat request (``logprobs`` asked for only when the request wants them)."""
    return _chat_body(chat_messages_of(request), request.max_output_tokens, request.temperature,
                      logprobs=request.response_logprobs)


def _chat_body(messages: list[dict[str, str]], max_tokens: int, temperature: float,
               logprobs: bool = False) -> dict[str, Any]:
    """One chat instance in a prediction body."""
    instance: dict[str, Any] = {
        REQUEST_FORMAT_KEY: CHAT_REQUEST_FORMAT,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if logprobs:
        instance["logprobs"] = True
    return {"instances": [instance]}


def _completion_of(body: Any) -> Any:
    """The chat completion in a ``{"predictions": ...}`` body (the completion itself or a list holding it)."""
    predictions = body.get("predictions") if isinstance(body, dict) else None
    return predictions[0] if isinstance(predictions, list) and predictions else predictions


def _average_logprob(choice: dict[str, Any]) -> float | None:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None
    values = [float(token["logprob"]) for token in content if isinstance(token, dict) and "logprob" in token]
    if not values or not all(math.isfinite(v) for v in values):
        return None
    return sum(values) / len(values)


def reply_from_chat_response(body: Any, endpoint: str) -> ModelReply:
    """The answer of a chat request from the container's ``{"predictions": ...}`` body.

    ``predictions`` is the chat completion itself or a list holding it. Raises GenerationCallError
    (not retryable) when the body is not a chat completion.
    """
    completion = _completion_of(body)
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise GenerationCallError(f"{endpoint}: the vLLM answer has no choices[0] (not a chat completion)")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text = message.get("content")
    finish = str(choice.get("finish_reason") or "")
    return ModelReply(
        text=text if isinstance(text, str) else "",
        finish_reason=_FINISH_REASONS.get(finish, finish.upper()),
        avg_logprob=_average_logprob(choice),
        model_version=str(completion.get("model") or ""),
    )


class VllmReplyGenerator:
    """Asks one vLLM endpoint with chat requests (a ``ReplyGenerator``).

    Args:
        endpoint: the endpoint's resource name.
        raw_predict: sends a JSON body to the endpoint's container and returns its JSON answer; raises
            GenerationCallError when the call fails.
    """

    def __init__(self, endpoint: str, raw_predict: Callable[[str, dict[str, Any]], Any]) -> None:
        self.model = endpoint
        self._raw_predict = raw_predict

    def __call__(self, request: ReplyRequest) -> ModelReply:
        return reply_from_chat_response(self._raw_predict(self.model, chat_request_body(request)), self.model)


# Gemini content roles -> chat roles.
_CHAT_ROLES = {"user": "user", "model": "assistant"}


def case_chat_body(system_instruction: str, contents: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    """The prediction body asking a vLLM endpoint one evaluation case (Gemini ``contents``, temperature 0).

    Args:
        system_instruction: the case's system instruction ("" for none).
        contents: the case's Gemini turns, ending with the user's question.
        max_tokens: the answer length cap.
    """
    messages = [{"role": "system", "content": system_instruction}] if system_instruction else []
    for turn in contents:
        text = "".join(str(part.get("text", "")) for part in turn.get("parts") or [] if isinstance(part, dict))
        messages.append({"role": _CHAT_ROLES.get(str(turn.get("role", "user")), "user"), "content": text})
    return _chat_body(messages, max_tokens, 0.0)


class VllmCaseGenerator:
    """Answers evaluation cases with an open model on a vLLM endpoint (an evaluation ``Generator``).

    The champion of a Gemini run may be an open-weights deployment; it answers the same holdout
    through its endpoint's container, with the case's system instruction and turns as chat messages.

    Args:
        endpoint: the endpoint's resource name.
        raw_predict: sends a JSON body to the endpoint's container and returns its JSON answer; raises
            GenerationCallError when the call fails.
        max_output_tokens: the answer length cap.
    """

    def __init__(self, endpoint: str, raw_predict: Callable[[str, dict[str, Any]], Any],
                 max_output_tokens: int = 1024) -> None:
        self.model = endpoint
        self._raw_predict = raw_predict
        self._max_output_tokens = max_output_tokens

    def __call__(self, case: Any) -> Any:
        """Generate an answer for an EvaluationCase; returns a GenerationResult."""
        from gemini_sft.evaluation.generation import GenerationResult

        body = self._raw_predict(self.model, case_chat_body(case.system_instruction, list(case.contents),
                                                            self._max_output_tokens))
        reply = reply_from_chat_response(body, self.model)  # GenerationCallError when it is no chat completion
        usage = _completion_of(body).get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return GenerationResult(
            text=reply.text, model_version=reply.model_version or self.model, finish_reason=reply.finish_reason,
            input_tokens=int(usage.get("prompt_tokens") or 0), output_tokens=int(usage.get("completion_tokens") or 0),
        )

