"""The evaluation reports: self-contained HTML, escaping, the stand-in notice, the content people read."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from gemini_sft.errors import GenerationCallError
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.html_report import render_html
from gemini_sft.evaluation.markdown_report import render_markdown
from gemini_sft.evaluation.report_text import OFFLINE_NOTICE
from gemini_sft.evaluation.result import EvaluationResult
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import evaluation_case, make_example
from gemini_sft.retry import RetryPolicy

HOSTILE = '<script>alert("x")</script> & <img src="https://evil.example/x.png"> | pipe ![i](https://evil.example/i.png)'


def evaluate(version: str = "offline-stand-in/base/m", champion: bool = False, label: bool = True) -> EvaluationResult:
    cases = []
    for i in range(40):
        category = ["billing", "outage"][i % 2]
        prompt = f"ticket {i}: {HOSTILE}" if i == 3 else f"ticket {i}"
        cases.append(HoldoutCase(f"t{i}", evaluation_case(make_example(prompt, f"Category: {category} then reply"))))

    def base(case):
        return GenerationResult(case.reference, version)  # base is perfect...

    def tuned(case):
        if case.prompt_text == "ticket 5":
            raise GenerationCallError("quota", status_code=429)
        if case.prompt_text.startswith("ticket 3:"):
            return GenerationResult(HOSTILE, version)  # ...and the tuned model regresses on a few
        if case.prompt_text in ("ticket 7", "ticket 9"):
            return GenerationResult("Category: billing", version)
        return GenerationResult(case.reference, version)

    generators = {"base": base, "tuned": tuned}
    if champion:
        generators["champion"] = base
    return run_evaluation(
        cases, generators,
        EvaluationSettings(base_model="gemini-2.5-flash", tuned_endpoint="projects/p/locations/l/endpoints/1",
                           champion_endpoint="projects/p/locations/l/endpoints/0" if champion else "",
                           requests_per_minute=1e9, bootstrap_samples=100,
                           label_pattern=r"Category: (\w+)" if label else ""),
        retry=RetryPolicy(max_attempts=1),
    )


class ResourceCollector(HTMLParser):
    """Collects every attribute that could load something, and inline style text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def test_html_is_self_contained():
    page = render_html(evaluate(champion=True))
    collector = ResourceCollector()
    collector.feed(page)
    for tag, attrs in collector.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "img"), tag
        for name in ("src", "href", "xlink:href", "data", "srcset", "action"):
            value = attrs.get(name)
            assert value is None or not re.match(r"\s*(https?:)?//", value), (tag, name, value)
        style = attrs.get("style") or ""
        assert "url(" not in style
    css = "\n".join(collector.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    # and, bluntly, no external reference anywhere outside escaped example text
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, flags=re.I)
    assert "<script" not in page.lower()
    assert "<svg" in page


def test_example_text_is_escaped():
    page = render_html(evaluate())
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert '<img src="https://evil.example' not in page


def test_offline_notice_comes_first_only_for_stand_in_answers():
    page = render_html(evaluate())
    body = page.split("<main>", 1)[1]
    assert body.index("Offline stand-in") < body.index("<h1>")
    assert OFFLINE_NOTICE in page
    markdown = render_markdown(evaluate())
    assert markdown.splitlines()[2].startswith("> **Offline stand-in.**")
    real = evaluate(version="gemini-2.5-flash-001")
    assert "Offline stand-in" not in render_html(real)
    assert "Offline stand-in" not in render_markdown(real)


def test_html_shows_summary_charts_regressions_and_method():
    result = evaluate(champion=True)
    page = render_html(result)
    for text in ("Summary", "95% CI", "Distribution of ROUGE-L", "Wins, ties and losses", "Worst regressions",
                 "Errors and answer lengths", "Label accuracy", "tuned − champion", "Method",
                 "excluded from that model", "HTTP 429"):
        assert text in page, text
    assert page.count("<svg") == 3
    # the worst regressions are the examples where tuned fell below base, worst first
    regressions = re.findall(r'example <code>(t\d+)</code>', page)
    assert regressions[0] == "t3" and set(regressions) == {"t3", "t7", "t9"}
    # the summary table shows the measured delta and its interval
    delta = result.metrics["delta_rougeL"]
    assert f"{delta:+.3f}" in page
    assert f"{result.metrics['delta_rougeL_ci_low']:+.3f}" in page


def test_markdown_report_tables():
    result = evaluate(champion=False, label=True)
    markdown = render_markdown(result)
    assert "| ROUGE-L |" in markdown and "| Label macro-F1 |" in markdown
    assert "tuned − champion" not in markdown
    assert "| Tuned | 39 | 1 | 2.5% |" in markdown
    assert "reference \\ predicted" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| t3 |")]
    assert len(table_rows) == 1
    row = table_rows[0]
    assert not re.search(r"(?<!\\)<", row)  # every "<" escaped: no raw HTML
    assert "![" not in row and "](" not in row  # no image or link syntax
    assert "\\| pipe" in row  # pipes escaped so the table keeps its columns
    assert row.count(" | ") == 5  # exactly the six cells of the row
    assert "| `gemini-2.5-flash` |" in markdown  # model names as code, unescaped


def test_report_without_labels_has_no_label_section():
    page = render_html(evaluate(label=False))
    assert "Label accuracy" not in page and "<h2>Labels</h2>" not in page


@pytest.mark.parametrize("renderer", [render_html, render_markdown])
def test_reports_survive_a_model_that_failed_often(renderer):
    def flaky(case):
        if int(case.prompt_text.split()[1]) % 2:
            raise GenerationCallError("unavailable", status_code=503)
        return GenerationResult("x", "v")

    cases = [HoldoutCase(f"t{i}", evaluation_case(make_example(f"ticket {i}", "y"))) for i in range(6)]
    result = run_evaluation(cases, {"base": flaky, "tuned": flaky},
                            EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9,
                                               bootstrap_samples=20),
                            retry=RetryPolicy(max_attempts=1))
    text = renderer(result)
    assert "50.0%" in text
