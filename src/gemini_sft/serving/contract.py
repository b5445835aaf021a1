"""The output contract of a tuned model, learned from its training answers.

A tuned model that learned a format keeps to it; an answer that breaks it is a
sign the model went off the rails. The contract holds what every training
answer had in common:

* ``required_lines``: the line keys (``Category`` of ``Category: billing``)
  present in every training answer;
* ``label_pattern`` and ``labels``: the label regular expression (the
  pipeline's ``label_pattern``) and the labels the training answers carry;
* ``system_instruction``: the instruction most training examples were tuned
  with, so production asks the model the way it was taught.

A contract is kept in the promotion registry beside the records, one JSON file
per model version (``contracts/<model id>@<version>.json``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gemini_sft.errors import ConfigError, InputFormatError
from gemini_sft.examples import content_text, system_instruction_text
from gemini_sft.evaluation.metrics import compile_label_pattern, extract_label
from gemini_sft.storage import read_json_lines

log = logging.getLogger(__name__)

CONTRACTS_DIR = "contracts"
# A line key: a short name at the start of a line, followed by a colon ("Category:", "Next step:").
_LINE_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _-]{0,39}):")
# Share of training answers the label pattern must match before the contract requires a label.
LABEL_COVERAGE_FOR_CONTRACT = 0.95


@dataclass(frozen=True)
class OutputContract:
    """What every answer of a tuned model should look like (empty fields check nothing)."""

    required_lines: tuple[str, ...] = ()
    label_pattern: str = ""
    labels: tuple[str, ...] = ()
    system_instruction: str = ""
    training_answers: int = 0

    @property
    def checks_anything(self) -> bool:
        return bool(self.required_lines or self.label_pattern)

    def violation(self, text: str) -> str | None:
        """``"contract_lines"`` or ``"contract_label"`` when ``text`` breaks the contract, else None."""
        if self.required_lines:
            present = line_keys(text)
            if any(key not in present for key in self.required_lines):
                return "contract_lines"
        if self.label_pattern:
            label = extract_label(text, compile_label_pattern(self.label_pattern))
            if label is None or (self.labels and label not in self.labels):
                return "contract_label"
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "contract") -> "OutputContract":
        """Parse a contract file; ConfigError naming ``source`` when it is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source} is not JSON ({exc.msg}); it should be an output contract file.") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must hold a JSON object (an output contract).")
        try:
            contract = cls(
                required_lines=tuple(str(key) for key in data.get("required_lines", ())),
                label_pattern=str(data.get("label_pattern", "")),
                labels=tuple(str(label) for label in data.get("labels", ())),
                system_instruction=str(data.get("system_instruction", "")),
                training_answers=int(data.get("training_answers", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source} has a field of the wrong type ({exc}).") from exc
        compile_label_pattern(contract.label_pattern)
        return contract


def line_keys(text: str) -> set[str]:
    """The line keys of a text: ``{"Category", "Priority"}`` for ``"Category: a\\nPriority: b"``."""
    keys = set()
    for line in text.splitlines():
        match = _LINE_KEY.match(line)
        if match:
            keys.add(match.group(1).strip())
    return keys


@dataclass
class _ContractBuilder:
    label_pattern: str
    answers: int = 0
    common_keys: set[str] | None = None
    key_order: dict[str, int] = field(default_factory=dict)
    labels: Counter[str] = field(default_factory=Counter)
    unlabelled: int = 0
    instructions: Counter[str] = field(default_factory=Counter)

    def add(self, answer: str, instruction: str) -> None:
        self.answers += 1
        keys = line_keys(answer)
        for position, line in enumerate(answer.splitlines()):
            match = _LINE_KEY.match(line)
            if match:
                self.key_order.setdefault(match.group(1).strip(), position)
        self.common_keys = keys if self.common_keys is None else self.common_keys & keys
        if self.label_pattern:
            label = extract_label(answer, compile_label_pattern(self.label_pattern))
            if label is None:
                self.unlabelled += 1
            else:
                self.labels[label] += 1
        self.instructions[instruction] += 1

    def build(self) -> OutputContract:
        required = sorted(self.common_keys or (), key=lambda key: (self.key_order.get(key, 0), key))
        labelled = self.answers - self.unlabelled
        use_label = bool(self.label_pattern) and self.answers > 0 and labelled / self.answers >= LABEL_COVERAGE_FOR_CONTRACT
        if self.label_pattern and not use_label:
            log.warning(
                "the label pattern matched %d of %d training answers: the contract does not require a label",
                labelled,
                self.answers,
            )
        instruction, _ = self.instructions.most_common(1)[0] if self.instructions else ("", 0)
        return OutputContract(
            required_lines=tuple(required),
            label_pattern=self.label_pattern if use_label else "",
            labels=tuple(sorted(self.labels)) if use_label else (),
            system_instruction=instruction,
            training_answers=self.answers,
        )


def learn_output_contract(train_path: str | Path, label_pattern: str = "") -> OutputContract:
    """The contract every answer of a Gemini-format training file keeps (last model turn of each example).

    Args:
        train_path: the training split (JSONL of Gemini examples).
        label_pattern: the pipeline's label regex ("" for none); required only when it matches at
            least 95% of training answers.

    Raises InputFormatError when the file is missing, a line is not JSON, or no example has a model turn;
    ConfigError for an invalid label pattern.
    """
    compile_label_pattern(label_pattern)
    path = Path(train_path)
    if not path.is_file():
        raise InputFormatError(f"Training file {path} does not exist; pass the run's train split.")
    builder = _ContractBuilder(label_pattern=label_pattern)
    for _, example in read_json_lines(path):
        turns = [c for c in (example.get("contents") or []) if isinstance(c, dict)] if isinstance(example, dict) else []
        answers = [content_text(turn) for turn in turns if turn.get("role") == "model"]
        if answers:
            builder.add(answers[-1], system_instruction_text(example) or "")
    if builder.answers == 0:
        raise InputFormatError(f"Training file {path} has no example with a model answer to learn a contract from.")
    contract = builder.build()
    log.info(
        "output contract from %d training answers: %d required line(s), label %s",
        contract.training_answers,
        len(contract.required_lines),
        "required" if contract.label_pattern else "not required",
    )
    return contract


def contract_path(model_versioned_name: str) -> str:
    """Where a model version's contract lives in a registry: ``contracts/<model id>@<version>.json``."""
    return f"{CONTRACTS_DIR}/{model_versioned_name.rsplit('/', 1)[-1]}.json"
