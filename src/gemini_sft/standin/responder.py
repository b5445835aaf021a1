"""Model answers of the offline stand-in, and its generateContent / countTokens routes.

Two deterministic stand-ins for Gemini, neither of which is a language model:

* the **base model** (:func:`base_answer`) writes a short, generic reply
  built from a few words of the prompt only: it knows nothing of any
  training data;
* a **tuned model** (:class:`NearestExampleIndex`) answers with the model
  turn of the training example whose prompt is nearest to the request:
  first an exact (whitespace- and case-insensitive) prompt match, else the
  highest TF-IDF cosine similarity over word tokens, ties going to the
  earlier training example. With no shared word at all it answers with the
  training file's most frequent response. The index is built once, when the
  tuning job is created, so a lookup takes well under a millisecond for a
  few thousand examples.

Both answer identically for identical requests. ``temperature``, ``topP``,
``topK`` and ``seed`` are accepted and ignored; ``maxOutputTokens`` truncates
the answer by estimated tokens (finish reason ``MAX_TOKENS``),
``stopSequences`` cut it, ``candidateCount`` repeats it. The system
instruction is part of the prompt each model sees. Responses carry
``modelVersion`` ``offline-stand-in/base/{model}`` or
``offline-stand-in/tuned/{endpoint-id}``; answer texts themselves are plain.
Token counts are the estimates of :mod:`gemini_sft.tokens`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import numpy as np

from gemini_sft.examples import Example, content_text, system_instruction_text
from gemini_sft.model_catalog import catalog
from gemini_sft.standin.model_checks import check_generation_config, served_publisher_model
from gemini_sft.standin.routing import Route, StandInError, StandInRequest, api_path
from gemini_sft.tokens import CHARS_PER_TOKEN, estimate_example_tokens, estimate_text_tokens

BASE_MODEL_VERSION_PREFIX = "offline-stand-in/base/"
TUNED_MODEL_VERSION_PREFIX = "offline-stand-in/tuned/"

_WORD = re.compile(r"\w+")
_KEYWORD_MIN_CHARS = 5
_KEYWORDS_IN_BASE_ANSWER = 3
_BASE_TEMPLATES: tuple[str, ...] = (
    "Thank you for the details. This looks like a request about {topic}. "
    "I would look into it and follow up with more information.",
    "Here is a general answer: the message mentions {topic}. "
    "More context would be needed to give a precise response.",
    "I understand you are asking about {topic}. "
    "A specific answer depends on details that are not given here.",
    "Thanks for reaching out about {topic}. "
    "Please share any further details so the right next step can be taken.",
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of a text (Unicode letters, digits and underscores)."""
    return _WORD.findall(text.lower())


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Prompt:
    """What a model is asked: the system instruction text and the user turns' text."""

    system_text: str
    user_text: str

    @property
    def full_text(self) -> str:
        return f"{self.system_text}\n{self.user_text}" if self.system_text else self.user_text


def prompt_from_request(body: dict[str, Any]) -> Prompt:
    """The prompt of a generateContent / countTokens body.

    Turns without a role count as user turns. Raises StandInError(400) when
    ``contents`` is missing or empty, as Vertex does.
    """
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise StandInError(400, "Request contains no `contents`: at least one content with parts is required.")
    user_texts = [
        content_text(c) for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"
    ]
    instruction = body.get("systemInstruction")
    system_text = content_text(instruction) if isinstance(instruction, dict) else ""
    return Prompt(system_text=system_text, user_text="\n".join(user_texts))


def base_answer(model: str, prompt: Prompt) -> str:
    """The base model's answer: a generic reply naming the first few long words of the user text.

    Deterministic: the template is chosen from a hash of the model and the
    prompt. Never looks at training data.
    """
    long_words = [w for w in _WORD.findall(prompt.user_text) if len(w) >= _KEYWORD_MIN_CHARS]
    keywords: list[str] = []
    for word in long_words:
        lowered = word.lower()
        if lowered not in keywords:
            keywords.append(lowered)
        if len(keywords) == _KEYWORDS_IN_BASE_ANSWER:
            break
    topic = ", ".join(keywords) if keywords else "your request"
    digest = hashlib.sha256(f"{model}\n{prompt.full_text}".encode("utf-8")).digest()
    template = _BASE_TEMPLATES[digest[0] % len(_BASE_TEMPLATES)]
    return template.format(topic=topic)


def training_pairs(example: Example) -> list[tuple[Prompt, str]]:
    """(prompt, target) pairs of one Gemini example: one per model turn that follows a user turn.

    The prompt of the k-th model turn is the system instruction and every
    user turn before it; the target is that model turn's text.
    """
    system_text = system_instruction_text(example) or ""
    pairs: list[tuple[Prompt, str]] = []
    user_texts: list[str] = []
    for content in example.get("contents") or []:
        if not isinstance(content, dict):
            continue
        if content.get("role") == "model":
            if user_texts:
                pairs.append((Prompt(system_text, "\n".join(user_texts)), content_text(content)))
        else:
            user_texts.append(content_text(content))
    return pairs


class NearestExampleIndex:
    """Nearest-training-example lookup: exact prompt match, else TF-IDF cosine over word tokens.

    Build it with :meth:`from_examples`; :meth:`answer` returns the target
    text of the nearest training prompt. Thread-safe for concurrent lookups
    (immutable after construction).
    """

    def __init__(self, prompts: list[str], targets: list[str]) -> None:
        if not prompts or len(prompts) != len(targets):
            raise ValueError("a nearest-example index needs at least one (prompt, target) pair")
        self._targets = targets
        self._exact: dict[str, int] = {}
        for doc_id, prompt in enumerate(prompts):
            self._exact.setdefault(_normalized(prompt), doc_id)
        self._fallback = Counter(targets).most_common(1)[0][0]

        doc_count = len(prompts)
        term_counts = [Counter(words(p)) for p in prompts]
        document_frequency: Counter[str] = Counter()
        for counts in term_counts:
            document_frequency.update(counts.keys())
        # A term found in every prompt has idf 0: it cannot tell prompts apart.
        self._idf = {
            term: math.log(doc_count / df) for term, df in document_frequency.items() if df < doc_count
        }
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for doc_id, counts in enumerate(term_counts):
            weights = {
                term: (1.0 + math.log(tf)) * self._idf[term] for term, tf in counts.items() if term in self._idf
            }
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for term, weight in weights.items():
                ids, values = postings.setdefault(term, ([], []))
                ids.append(doc_id)
                values.append(weight / norm)
        self._postings = {
            term: (np.asarray(ids, dtype=np.int64), np.asarray(values, dtype=np.float64))
            for term, (ids, values) in postings.items()
        }
        self._doc_count = doc_count

    @classmethod
    def from_examples(cls, examples: Iterable[Example]) -> "NearestExampleIndex":
        """An index over every (prompt, model turn) pair of the examples; ValueError when there is none."""
        prompts: list[str] = []
        targets: list[str] = []
        for example in examples:
            for prompt, target in training_pairs(example):
                prompts.append(prompt.full_text)
                targets.append(target)
        return cls(prompts, targets)

    @property
    def size(self) -> int:
        """Number of (prompt, target) pairs indexed."""
        return self._doc_count

    def is_exact(self, prompt_text: str) -> bool:
        """Whether the prompt is one of the training prompts (whitespace- and case-insensitive)."""
        return _normalized(prompt_text) in self._exact

    def _scores(self, prompt_text: str) -> np.ndarray | None:
        """TF-IDF cosine of the prompt with every training prompt, or None when no informative word is shared."""
        query = Counter(words(prompt_text))
        doc_ids: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for term, tf in query.items():
            posting = self._postings.get(term)
            if posting is None:
                continue
            doc_ids.append(posting[0])
            weights.append(posting[1] * ((1.0 + math.log(tf)) * self._idf[term]))
        if not doc_ids:
            return None
        return np.bincount(np.concatenate(doc_ids), weights=np.concatenate(weights), minlength=self._doc_count)

    def nearest(self, prompt_text: str) -> int | None:
        """Index of the nearest training pair, or None when no informative word is shared."""
        exact = self._exact.get(_normalized(prompt_text))
        if exact is not None:
            return exact
        scores = self._scores(prompt_text)
        if scores is None:
            return None
        best = int(np.argmax(scores))
        return best if scores[best] > 0.0 else None

    def answer_ranked(self, prompt_text: str, rank: int) -> str:
        """The ``rank``-th nearest training answer counting distinct answers only (1 = :meth:`answer`).

        Fewer distinct answers than ``rank`` among the prompts sharing a word give the last one found.
        """
        if rank <= 1:
            return self.answer(prompt_text)
        scores = self._scores(prompt_text)
        if scores is None:
            return self._fallback
        found: list[str] = []
        for doc_id in np.argsort(-scores, kind="stable"):
            if scores[doc_id] <= 0.0:
                break
            target = self._targets[int(doc_id)]
            if target not in found:
                found.append(target)
                if len(found) == rank:
                    break
        return found[-1] if found else self._fallback

    def answer(self, prompt_text: str) -> str:
        """Target text of the nearest training pair (the most frequent target when nothing is shared)."""
        best = self.nearest(prompt_text)
        return self._fallback if best is None else self._targets[best]


@dataclass(frozen=True)
class TunedResponder:
    """The tuned model behind one stand-in endpoint."""

    endpoint_id: str
    index: NearestExampleIndex
    base_model: str | None = None

    @property
    def model_version(self) -> str:
        return TUNED_MODEL_VERSION_PREFIX + self.endpoint_id

    def answer(self, prompt: Prompt) -> str:
        return self.index.answer(prompt.full_text)


def _apply_generation_config(text: str, config: dict[str, Any]) -> tuple[str, str]:
    """(text, finishReason) after ``stopSequences`` and ``maxOutputTokens``; StandInError(400) on bad values."""
    finish_reason = "STOP"
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise StandInError(400, "generationConfig.stopSequences must be a list of strings.")
    for stop in stops:
        position = text.find(stop) if stop else -1
        if position >= 0:
            text = text[:position]
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise StandInError(400, "generationConfig.maxOutputTokens must be a positive integer.")
        max_chars = int(max_tokens * CHARS_PER_TOKEN)
        if len(text) > max_chars:
            text = text[:max_chars]
            finish_reason = "MAX_TOKENS"
    return text, finish_reason


def _prompt_tokens(body: dict[str, Any]) -> int:
    request_example: dict[str, Any] = {"contents": body.get("contents") or []}
    if isinstance(body.get("systemInstruction"), dict):
        request_example["systemInstruction"] = body["systemInstruction"]
    return estimate_example_tokens(request_example)


def generate_content_response(answer: str, body: dict[str, Any], model_version: str) -> dict[str, Any]:
    """A Vertex generateContent response body for ``answer`` under the request's generationConfig.

    Raises StandInError(400) for an invalid generationConfig.
    """
    config = body.get("generationConfig") or {}
    if not isinstance(config, dict):
        raise StandInError(400, "generationConfig must be a JSON object.")
    text, finish_reason = _apply_generation_config(answer, config)
    candidate_count = config.get("candidateCount", 1)
    if not isinstance(candidate_count, int) or isinstance(candidate_count, bool) or candidate_count < 1:
        raise StandInError(400, "generationConfig.candidateCount must be a positive integer.")
    prompt_tokens = _prompt_tokens(body)
    output_tokens = estimate_text_tokens(text)
    response_id = hashlib.sha256(f"{model_version}\n{text}".encode("utf-8")).hexdigest()[:24]
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish_reason, "index": i}
            for i in range(candidate_count)
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens * candidate_count,
            "totalTokenCount": prompt_tokens + output_tokens * candidate_count,
        },
        "modelVersion": model_version,
        "createTime": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "responseId": response_id,
    }


def count_tokens_response(body: dict[str, Any]) -> dict[str, Any]:
    """A Vertex countTokens response body with estimated counts; StandInError(400) without contents."""
    prompt = prompt_from_request(body)
    return {
        "totalTokens": _prompt_tokens(body),
        "totalBillableCharacters": len(prompt.system_text) + len(prompt.user_text),
    }


EndpointLookup = Callable[[str], TunedResponder | None]

_PUBLISHER_MODEL = r"publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+)"
_ENDPOINT = r"endpoints/(?P<endpoint_id>[^/:]+)"


def generation_routes(lookup_endpoint: EndpointLookup) -> list[Route]:
    """generateContent and countTokens for publisher models and tuned-model endpoints.

    ``lookup_endpoint`` maps an endpoint resource name
    (``projects/P/locations/L/endpoints/ID``) to its tuned model, or None when
    no succeeded tuning job created it (answered with 404).
    """

    def tuned(request: StandInRequest) -> TunedResponder:
        name = (
            f"projects/{request.group('project')}/locations/{request.group('location')}"
            f"/endpoints/{request.group('endpoint_id')}"
        )
        responder = lookup_endpoint(name)
        if responder is None:
            raise StandInError(
                404, f"Endpoint {name} not found: no succeeded tuning job of this offline stand-in deployed it."
            )
        return responder

    def generate_base(request: StandInRequest) -> tuple[int, Any]:
        body = request.json_object()
        model = request.group("model")
        check_generation_config(served_publisher_model(request), body)
        answer = base_answer(model, prompt_from_request(body))
        return 200, generate_content_response(answer, body, BASE_MODEL_VERSION_PREFIX + model)

    def generate_tuned(request: StandInRequest) -> tuple[int, Any]:
        body = request.json_object()
        responder = tuned(request)
        base = catalog().find(responder.base_model) if responder.base_model else None
        if base is not None:
            check_generation_config(base, body)
        answer = responder.answer(prompt_from_request(body))
        return 200, generate_content_response(answer, body, responder.model_version)

    def count_base(request: StandInRequest) -> tuple[int, Any]:
        served_publisher_model(request)
        return 200, count_tokens_response(request.json_object())

    def count_tuned(request: StandInRequest) -> tuple[int, Any]:
        tuned(request)
        return 200, count_tokens_response(request.json_object())

    return [
        Route("POST", api_path(_PUBLISHER_MODEL + ":generateContent"), generate_base,
              name="generateContent.base", faultable=True),
        Route("POST", api_path(_ENDPOINT + ":generateContent"), generate_tuned,
              name="generateContent.endpoint", faultable=True),
        Route("POST", api_path(_PUBLISHER_MODEL + ":countTokens"), count_base, name="countTokens.base"),
        Route("POST", api_path(_ENDPOINT + ":countTokens"), count_tuned, name="countTokens.endpoint"),
    ]
