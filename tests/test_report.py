"""The evaluation reports: self-contained HTML, escaping, the stand-in notice, the content people read."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gemini_sft.errors import GenerationCallError
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.html_report import render_html
from gemini_sft.evaluation.markdown_report import render_markdown
from gemini_sft.evaluation.report_text import OFFLINE_NOTICE, sample_answers
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
    regressions = re.findall(r'example <code>(t\d+)</code>', page.split("<h2>Worst regressions</h2>")[1])
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


def test_every_confusion_matrix_has_the_same_rows_and_columns():
    # base labels every answer, the tuned model answers two tickets with no label: only its matrix needs "(other)"
    def base(case):
        return GenerationResult(case.reference, "v")

    def tuned(case):
        return GenerationResult("no idea" if case.prompt_text in ("ticket 1", "ticket 2") else case.reference, "v")

    cases = [HoldoutCase(f"t{i}", evaluation_case(make_example(f"ticket {i}", f"Category: {['a', 'b'][i % 2]}")))
             for i in range(6)]
    result = run_evaluation(cases, {"base": base, "tuned": tuned},
                            EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9,
                                               bootstrap_samples=0, label_pattern=r"Category: (\w+)"))
    assert result.confusion["base"].categories == ["a", "b"]  # the metrics keep each model's own matrix
    page = render_html(result)
    tables = re.findall(r'<table class="cm">(.*?)</table>', page)
    assert len(tables) == 2
    for table in tables:
        assert re.findall(r"<tr><th>([^<]*)</th>", table) == ["reference \\ predicted", "a", "b", "(other)"]
    assert "<tr><th>(other)</th><td>0</td><td>0</td><td>0</td></tr>" in tables[0]  # base: zeros
    assert re.search(r"<tr><th>a</th><td[^>]*>2</td><td>0</td><td[^>]*>1</td></tr>", tables[1])  # tuned
    markdown = render_markdown(result)
    assert markdown.count("| reference \\ predicted | a | b | \\(other\\) |") == 2
    assert markdown.count("| \\(other\\) | 0 | 0 | 0 |") == 2


def identical_models_result(n: int = 12, seed: int = 42) -> EvaluationResult:
    cases = [HoldoutCase(f"t{i:02d}", evaluation_case(make_example(f"ticket {i}", f"answer number {i} " * (1 + i % 4))))
             for i in range(n)]

    def same(case):
        return GenerationResult("answer number " + case.prompt_text.split()[1], "v")

    return run_evaluation(cases, {"base": same, "tuned": same},
                          EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9,
                                             bootstrap_samples=0, seed=seed))


def test_sample_answers_show_best_worst_and_random_even_when_nothing_regressed():
    result = identical_models_result()
    samples = sample_answers(result)
    assert [s.kind for s in samples] == ["best"] * 3 + ["worst"] * 3 + ["random"] * 3
    assert len({s.record.example_id for s in samples}) == 9  # no example twice
    assert all(s.diff == 0 for s in samples)
    assert samples == sample_answers(result)  # the same examples on every render
    page = render_html(result)
    assert "No example where the tuned model scored below the base model." in page
    section = page.split("<h2>Sample answers</h2>")[1].split("</section>")[0]
    assert section.count('<div class="case">') == 9
    for kind in ("Best", "Worst", "Random"):
        assert f'<h3 class="kind">{kind} ' in section
    for sample in samples:
        assert f"example <code>{sample.record.example_id}</code>" in section
    markdown = render_markdown(result)
    rows = [line for line in markdown.split("## Sample answers")[1].splitlines() if line.startswith(("| best", "| worst",
                                                                                                    "| random"))]
    assert len(rows) == 9


def test_sample_answers_rank_by_the_tuned_gain_and_draw_the_rest_by_seed():
    result = evaluate()
    samples = sample_answers(result)
    best = [s for s in samples if s.kind == "best"]
    worst = [s for s in samples if s.kind == "worst"]
    assert [s.record.example_id for s in worst] == ["t3", "t7", "t9"]  # the three the tuned model got wrong
    assert worst[0].diff < 0 and all(s.diff >= w.diff for s in best for w in worst)
    others = {s.record.example_id for s in samples if s.kind == "random"}
    draws = {frozenset(s.record.example_id for s in sample_answers(identical_models_result(30, seed))
                       if s.kind == "random") for seed in range(5)}
    assert len(others) == 3 and len(draws) > 1  # a different seed draws other examples
    failed = {r.example_id for r in result.records if not r.answers["tuned"].ok}
    assert failed and not failed & {s.record.example_id for s in samples}  # only examples both models answered


# --- the page in a browser ------------------------------------------------------------

CHROMIUM = next((path for path in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if path and os.path.exists(path)), None)
WINDOW_WIDTH = 1280
# Injected into a copy of the page only (the report itself has no script): measures, then writes what it found.
MEASURE_OVERFLOW = """<script>
addEventListener("load", () => {
  const problems = [];
  const page = document.documentElement.scrollWidth;
  if (page > innerWidth) problems.push(`the page is ${page}px wide in a ${innerWidth}px window`);
  for (const card of document.querySelectorAll("section, .banner")) {
    const box = card.getBoundingClientRect();
    const title = (card.querySelector("h2") || card).textContent.slice(0, 40);
    if (card.scrollWidth > card.clientWidth + 1) problems.push(`card "${title}" scrolls sideways`);
    for (const element of card.querySelectorAll("*")) {
      const r = element.getBoundingClientRect();
      if (r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1)) {
        problems.push(`${element.tagName.toLowerCase()}.${element.className} sticks out of card "${title}": `
                      + `${Math.round(r.left)}..${Math.round(r.right)} vs ${Math.round(box.left)}..${Math.round(box.right)}`);
      }
    }
  }
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({window: innerWidth, page, problems});
  document.body.appendChild(out);
});
</script>"""


def crowded_result() -> EvaluationResult:
    """A report that is hard to lay out: many long label names, a champion, long names, unbroken text, errors."""
    classes = [f"category_{name}_with_a_long_name" for name in
               ("billing", "outage", "account", "refund", "security", "shipping", "returns", "warranty",
                "pricing", "feedback", "legal", "other_issue")]
    unbroken = "x" * 600
    cases = [
        HoldoutCase(f"ticket-{i}-" + "k" * (60 if i == 0 else 0),
                    evaluation_case(make_example(f"ticket {i} " + (unbroken if i == 1 else "please help"),
                                                 f"Category: {classes[i % len(classes)]} " + "then a reply " * 5)))
        for i in range(48)
    ]

    def base(case):
        number = int(case.prompt_text.split()[1])
        if number % 7 == 0:
            raise GenerationCallError("quota", status_code=429)
        return GenerationResult(f"Category: {classes[(number + 1) % len(classes)]} " + unbroken, "gemini-2.5-flash-001")

    def tuned(case):
        number = int(case.prompt_text.split()[1])
        if number % 11 == 0:
            raise TimeoutError("the call timed out after a very long wait " + "z" * 200)
        return GenerationResult(case.reference if number % 3 else "Category: none " + unbroken, "tuned-version-7")

    def champion(case):
        return GenerationResult(case.reference.split(" then")[0], "champion-version-3")

    return run_evaluation(
        cases, {"base": base, "tuned": tuned, "champion": champion},
        EvaluationSettings(base_model="publishers/google/models/gemini-2.5-flash-preview-" + "9" * 40,
                           tuned_endpoint="projects/a-very-long-project-name/locations/us-central1/endpoints/"
                                          + "1234567890" * 4,
                           champion_endpoint="projects/p/locations/us-central1/endpoints/" + "9" * 30,
                           requests_per_minute=1e9, bootstrap_samples=50, label_pattern=r"Category: (\w+)"),
        retry=RetryPolicy(max_attempts=1),
    )


def render_in_chromium(page: str, tmp_path: Path, screenshot: Path | None = None) -> dict:
    """Open ``page`` in headless Chromium at 1280 px; returns what MEASURE_OVERFLOW found."""
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", MEASURE_OVERFLOW + "</body>"), encoding="utf-8")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--hide-scrollbars", f"--window-size={WINDOW_WIDTH},2000", f"--user-data-dir={tmp_path / 'profile'}"]
    if screenshot is not None:
        subprocess.run(command + [f"--screenshot={screenshot}", path.as_uri()], capture_output=True, timeout=120)
    dom = subprocess.run(command + ["--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.S)
    assert match, "Chromium did not run the measurement"
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
@pytest.mark.parametrize("crowded", [False, True], ids=["typical", "crowded"])
def test_nothing_overflows_horizontally_at_1280_px(tmp_path, crowded):
    result = crowded_result() if crowded else evaluate(champion=True)
    screenshot = os.environ.get("REPORT_SCREENSHOT")
    measured = render_in_chromium(render_html(result), tmp_path,
                                  Path(screenshot + f"-{'crowded' if crowded else 'typical'}.png") if screenshot else None)
    assert measured["window"] == WINDOW_WIDTH
    assert measured["page"] <= WINDOW_WIDTH
    assert measured["problems"] == []
