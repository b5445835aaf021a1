"""Each fallback rule on its own (the pure function the client and, later, the evaluation use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_sft.errors import InputFormatError
from gemini_sft.serving import FALLBACK_REASONS, FallbackRules, OutputContract, fallback_reason, learn_output_contract
from serving_helpers import GOOD, write_training_file

CONTRACT = OutputContract(
    required_lines=("Category", "Priority", "Action"),
    label_pattern=r"Category: (\w+)",
    labels=("account", "billing"),
)


@pytest.mark.parametrize(
    ("text", "finish", "avg_logprob", "expected"),
    [
        (GOOD, "STOP", -0.1, None),
        ("", "SAFETY", None, "blocked"),
        ("", "BLOCKED", None, "blocked"),
        ("partial text", "PROHIBITED_CONTENT", None, "blocked"),
        ("", "STOP", None, "empty"),
        ("  \n\t ", "STOP", None, "empty"),
        (None, "", None, "empty"),
        (GOOD, "MAX_TOKENS", None, "max_tokens"),
        (GOOD + "\n" + "refund refund " * 30, "STOP", None, "repetitive"),
        ("Category: billing\n" + "Please wait. " * 8, "STOP", None, "repetitive"),
        ("Category: billing\nPriority: high", "STOP", None, "contract_lines"),
        ("Category: shipping\nPriority: high\nAction: Ship it.", "STOP", None, "contract_label"),
        ("category - billing\nPriority: high\nAction: x\nCategory2: y", "STOP", None, "contract_lines"),
        (GOOD, "STOP", -2.5, "low_logprobs"),
        (GOOD, "STOP", float("nan"), None),
    ],
)
def test_each_reason(text, finish, avg_logprob, expected) -> None:
    assert fallback_reason(text, finish, CONTRACT, avg_logprob) == expected


def test_every_documented_reason_is_reachable_and_rules_can_be_turned_down() -> None:
    assert set(FALLBACK_REASONS) == {
        "blocked", "empty", "max_tokens", "repetitive", "contract_lines", "contract_label", "low_logprobs",
    }
    assert fallback_reason(GOOD, "STOP", None, -2.5, FallbackRules(min_avg_logprob=None)) is None
    assert fallback_reason("Category: shipping", "STOP", None) is None          # no contract, no contract check
    varied = "We refunded the duplicate charge and emailed you a receipt; the refund reaches your card in days."
    assert fallback_reason(varied, "STOP") is None


def test_contract_is_learned_from_the_lines_every_training_answer_has(tmp_path: Path) -> None:
    train = write_training_file(tmp_path / "train.jsonl", [
        "Category: billing\nPriority: high\nAction: Refund.",
        "Category: account\nPriority: low\nAction: Reset the password.\nNote: VIP",
        "Category: billing\nPriority: medium\nAction: Explain the invoice.",
    ])
    contract = learn_output_contract(train, r"Category: (\w+)")
    assert contract.required_lines == ("Category", "Priority", "Action")
    assert contract.labels == ("account", "billing")
    assert contract.system_instruction == "Triage the ticket."
    assert contract.training_answers == 3
    assert OutputContract.from_json(contract.to_json()) == contract
    assert contract.violation("Category: billing\nPriority: high\nAction: x") is None
    assert contract.violation("Category: billing\nAction: x") == "contract_lines"


def test_a_label_pattern_most_answers_lack_is_not_required(tmp_path: Path) -> None:
    train = write_training_file(tmp_path / "train.jsonl", ["Category: billing", "no label here", "none either"])
    contract = learn_output_contract(train, r"Category: (\w+)")
    assert contract.label_pattern == "" and contract.labels == ()
    with pytest.raises(InputFormatError):
        learn_output_contract(tmp_path / "missing.jsonl")
