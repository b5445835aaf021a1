"""The shipped sample dataset: current with its generator, realistic, dirty, and learnable."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from clean_helpers import kept_examples, prompt_and_response

from gemini_sft.dataset.clean import clean_dataset
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.sample_data import (
    CATEGORIES,
    PRIORITIES,
    generate_lines,
    main,
    render,
    shipped_sample_path,
)


def test_shipped_sample_is_the_generator_output() -> None:
    assert shipped_sample_path().read_bytes() == render().encode("utf-8"), (
        "the shipped sample is stale: run `python -m gemini_sft.sample_data --out src/gemini_sft/data/support_tickets.jsonl`"
    )


def test_generator_is_deterministic_per_seed_and_has_a_command(tmp_path: Path) -> None:
    assert generate_lines(seed=5) == generate_lines(seed=5)
    assert generate_lines(seed=5) != generate_lines(seed=6)
    assert main(["--out", str(tmp_path / "s.jsonl"), "--seed", "5"]) == 0
    assert (tmp_path / "s.jsonl").read_text(encoding="utf-8") == render(seed=5)


def test_sample_mixes_every_format_and_the_dirt_of_real_exports(tmp_path: Path) -> None:
    lines = generate_lines()
    assert 300 <= len(lines) <= 420
    keys = Counter()
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            keys[frozenset(k for k in record if k != "ticket_id")] += 1
    assert keys[frozenset({"systemInstruction", "contents"})] > 30
    assert keys[frozenset({"input", "output"})] > 30
    assert keys[frozenset({"input_text", "output_text"})] > 30
    assert keys[frozenset({"prompt", "completion"})] > 30
    assert keys[frozenset({"messages"})] > 30
    assert any(line != line.strip() or '"  ' in line or '\\n"' in line for line in lines)  # stray whitespace

    report = clean_dataset(shipped_sample_path(), SplitPaths.in_directory(tmp_path), CleanConfig())
    reasons = {reason for reason, count in report.rejected_by_reason.items() if count}
    assert {"duplicate", "empty_response", "unparseable_line", "conflicting_response"} <= reasons
    assert report.blank_lines >= 5
    assert 300 <= report.kept_rows <= 400
    assert report.kept_rows + report.rejected_rows == report.rows_read


def test_answers_follow_the_triage_template() -> None:
    pattern = re.compile(r"Category: (\w+)\nPriority: (\w+)\nAction: .+\.")
    for line in generate_lines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        answer = record.get("output") or record.get("output_text") or record.get("completion")
        if isinstance(answer, str) and answer.strip():
            match = pattern.fullmatch(answer.strip())
            assert match and match.group(1) in CATEGORIES and match.group(2) in PRIORITIES


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_category_is_learnable_from_training_examples_but_not_guessable(tmp_path: Path) -> None:
    clean_dataset(shipped_sample_path(), SplitPaths.in_directory(tmp_path), CleanConfig(seed=1))
    splits = kept_examples(tmp_path)
    train = [prompt_and_response(e) for e in splits["train"]]
    test = [prompt_and_response(e) for e in splits["validation"] + splits["holdout"]]

    def category(answer: str) -> str:
        return re.search(r"Category: (\w+)", answer).group(1)

    def nearest(prompt: str) -> str:  # a word-overlap nearest neighbour "trained" on the train split
        prompt_words = words(prompt)
        return max(train, key=lambda ex: len(prompt_words & words(ex[0])) / len(prompt_words | words(ex[0])))[1]

    learned = sum(category(nearest(p)) == category(a) for p, a in test) / len(test)
    majority = Counter(category(a) for _, a in train).most_common(1)[0][0]
    guessed = sum(category(a) == majority for _, a in test) / len(test)
    assert learned >= 0.8 and guessed <= 0.35
