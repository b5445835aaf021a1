"""The review page: one self-contained HTML document (no external resources).

Prompts and answers are untrusted text: the page receives them as JSON and
puts them into the document with ``textContent`` only, and the server sends a
Content-Security-Policy that allows no script but the page's own (by nonce).
"""

from __future__ import annotations

from string import Template

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gemini-sft: blind side-by-side review</title>
<style nonce="$nonce">
  :root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0969da; --bg: #f6f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #fff; }
  header { padding: 12px 24px; border-bottom: 1px solid var(--line); display: flex; gap: 24px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  #progress-text { color: var(--muted); }
  progress { width: 220px; height: 10px; }
  main { padding: 16px 24px; max-width: 1200px; margin: 0 auto; }
  .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin-bottom: 4px; }
  .box { white-space: pre-wrap; overflow-wrap: anywhere; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; background: var(--bg); }
  #prompt { margin-bottom: 16px; max-height: 30vh; overflow: auto; }
  .answers { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
  .answer .box { background: #fff; min-height: 120px; }
  .controls { display: flex; gap: 10px; margin: 16px 0 8px; flex-wrap: wrap; }
  button { font: inherit; padding: 8px 14px; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); cursor: pointer; }
  button:hover { border-color: var(--accent); }
  kbd { font: 12px ui-monospace, monospace; border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 4px; padding: 0 5px; background: #fff; }
  textarea { width: 100%; font: inherit; min-height: 54px; padding: 8px; border: 1px solid var(--line); border-radius: 6px; }
  #status { min-height: 1.5em; color: var(--muted); }
  #status.error { color: #cf222e; }
  #summary { margin-top: 18px; padding: 10px 14px; border-left: 4px solid var(--accent); background: var(--bg); }
  #done { display: none; }
  a { color: var(--accent); }
  @media (max-width: 800px) { .answers { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Blind side-by-side review</h1>
  <progress id="progress" max="1" value="0"></progress>
  <span id="progress-text">loading...</span>
  <a id="export" href="#">Export CSV</a>
</header>
<main>
  <section id="rating">
    <div class="label">Prompt <span id="example-id"></span></div>
    <div id="prompt" class="box"></div>
    <div class="answers">
      <div class="answer"><div class="label">Answer 1</div><div id="answer-1" class="box"></div></div>
      <div class="answer"><div class="label">Answer 2</div><div id="answer-2" class="box"></div></div>
    </div>
    <div class="controls">
      <button id="choose-1" data-choice="1"><kbd>1</kbd> Answer 1 is better</button>
      <button id="choose-tie" data-choice="tie"><kbd>=</kbd> Tie</button>
      <button id="choose-2" data-choice="2"><kbd>2</kbd> Answer 2 is better</button>
      <button id="choose-skip" data-choice="skip"><kbd>s</kbd> Skip</button>
    </div>
    <label class="label" for="note">Note (optional; Esc leaves the box so the keys rate again)</label>
    <textarea id="note" placeholder="Why? (kept with the rating)"></textarea>
  </section>
  <section id="done"><h2>All prompts are rated.</h2><p>Ratings are in <code id="ratings-file"></code>.</p></section>
  <div id="status" role="status"></div>
  <div id="summary"></div>
</main>
<script nonce="$nonce">
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const headers = token ? {"X-Review-Token": token} : {};
let current = null;
let busy = false;

function text(id, value) { document.getElementById(id).textContent = value; }
function count(n, one, many) { return n + " " + (n === 1 ? one : many); }
function percent(x) { return (x === null || isNaN(x)) ? "-" : (100 * x).toFixed(0) + "%"; }

function render(state) {
  current = state.item;
  const bar = document.getElementById("progress");
  bar.max = state.total; bar.value = state.done;
  text("progress-text", state.done + " of " + state.total + " prompts rated");
  document.getElementById("rating").style.display = current ? "" : "none";
  document.getElementById("done").style.display = current ? "none" : "block";
  text("ratings-file", state.ratings_file);
  if (current) {
    text("example-id", "(" + current.example_id + ")");
    text("prompt", current.prompt);
    text("answer-1", current.answers[0]);
    text("answer-2", current.answers[1]);
  }
  const s = state.summary;
  text("summary", s.rated === 0
    ? "No ratings yet. Win rate of the tuned model appears here (" + state.tie_policy + ")."
    : "Tuned model win rate: " + percent(s.win_rate) + " (95% Wilson interval " + percent(s.ci_low) + " to " +
      percent(s.ci_high) + ") from " + count(s.wins, "win", "wins") + ", " + count(s.ties, "tie", "ties") + ", " +
      count(s.losses, "loss", "losses") + "; " + s.skips + " skipped. " + state.tie_policy + ".");
}

function status(message, isError) {
  const el = document.getElementById("status");
  el.textContent = message; el.className = isError ? "error" : "";
}

async function load() {
  const response = await fetch("api/state", {headers: headers});
  if (!response.ok) { status("Cannot load the review (HTTP " + response.status + ").", true); return; }
  render(await response.json());
}

async function rate(choice) {
  if (!current || busy) return;
  busy = true;
  const note = document.getElementById("note");
  try {
    const response = await fetch("api/rate", {
      method: "POST",
      headers: Object.assign({"Content-Type": "application/json"}, headers),
      body: JSON.stringify({example_id: current.example_id, choice: choice, note: note.value}),
    });
    if (!response.ok) { status("Not saved (HTTP " + response.status + "); try again.", true); return; }
    note.value = "";
    status("Saved: " + (choice === "skip" ? "skipped" : choice === "tie" ? "tie" : "answer " + choice + " is better") + ".", false);
    render(await response.json());
  } catch (error) {
    status("Not saved: the review server does not answer. Restart it; nothing saved is lost.", true);
  } finally {
    busy = false;
  }
}

document.querySelectorAll("button[data-choice]").forEach(function (button) {
  button.addEventListener("click", function () { rate(button.dataset.choice); });
});
document.addEventListener("keydown", function (event) {
  const inNote = event.target && event.target.id === "note";
  if (inNote) { if (event.key === "Escape") event.target.blur(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const choice = {"1": "1", "2": "2", "=": "tie", "s": "skip", "S": "skip"}[event.key];
  if (choice) { event.preventDefault(); rate(choice); }
});
document.getElementById("export").href = "export.csv" + (token ? "?token=" + encodeURIComponent(token) : "");
load();
</script>
</body>
</html>
""")


def render_page(nonce: str) -> str:
    """The page's HTML with the CSP nonce of this response."""
    return _PAGE.substitute(nonce=nonce)
