"""Throughput and peak memory of the data stages against a bare ``json.loads`` loop.

Generates, deterministically and into a temporary directory, two JSONL files of
about ``--size-mb`` MB each:

* ``raw.jsonl``: realistic support-ticket examples in mixed raw formats (Gemini
  ``contents``, ``input``/``output``, ``input_text``/``output_text``,
  ``prompt``/``completion``, chat ``messages`` with ``assistant`` or ``model``),
  with a few blank lines, broken lines, duplicates and conflicts: the input of
  the clean stage;
* ``gemini.jsonl``: the same kind of examples in Gemini format, written as the
  clean stage writes its splits (compact UTF-8 JSON): the input of the
  validate stage.

Then measures, each in a fresh subprocess, MB/s (work only, interpreter start
excluded) and peak memory of:

(a) a bare loop ``for line in open(path, encoding="utf-8"): json.loads(line)``
    over each file (the baseline of the stage reading that file);
(b) ``validate_dataset`` on ``gemini.jsonl``;
(c) ``clean_dataset`` on ``raw.jsonl``;

and prints the ratios validate/bare and clean/bare with pass/fail against the
targets: validate >= 1.0x bare, clean >= 0.5x bare, peak memory < 1 GB.

Peak memory is the larger of the child's ``ru_maxrss`` (largest single process,
from ``os.wait4``) and the sampled total RSS of its process tree (the validate
stage may use worker processes; their RSS is summed, shared pages included,
so the figure errs high).

Usage: python benchmarks/bench_data.py [--size-mb 1000] [--repeat 1] [--workdir DIR] [--keep]
A quick smoke run: python benchmarks/bench_data.py --size-mb 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
TARGET_VALIDATE_VS_BARE = 1.0
TARGET_CLEAN_VS_BARE = 0.5
TARGET_PEAK_BYTES = 1024 * MB

SYSTEM_INSTRUCTION = (
    "You are the support assistant of an online shop. Classify the ticket, give its priority and answer "
    "in the customer's language, politely and in at most three sentences."
)
CATEGORIES = ["billing", "shipping", "refund", "account", "outage", "product"]
PRIORITIES = ["low", "normal", "high", "urgent"]
WORDS = (
    "order delivery parcel invoice refund payment card account password login app website checkout basket "
    "discount voucher warranty replacement return label courier address tracking number weekend yesterday "
    "morning customer service please urgent broken damaged missing late charged twice cancel subscription "
    "upgrade plan email phone store size colour model screen battery charger cable manual receipt"
).split()
# A share of realistic non-ASCII: accented names and words, CJK and emoji, as real customer text has.
NON_ASCII_WORDS = ["café", "naïve", "Müller", "São Paulo", "Zürich", "façade", "crème", "Ærø", "東京", "注文",
                   "配送", "спасибо", "заказ", "🙂", "📦", "€"]


# ----------------------------------------------------------------------------------- generation


def _sentence_pool(rng: random.Random, size: int) -> list[str]:
    """Distinct sentences to compose examples from (composition is fast; text generation is not)."""
    pool = []
    for _ in range(size):
        words = rng.choices(WORDS, k=rng.randint(6, 28))
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words)), rng.choice(NON_ASCII_WORDS))
        sentence = " ".join(words)
        pool.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "?", "!"]))
    return pool


def _prompt_and_answer(rng: random.Random, pool: list[str], index: int) -> tuple[str, str]:
    sentences = rng.randint(1, 9)
    prompt = f"Ticket {index}: " + " ".join(rng.choice(pool) for _ in range(sentences))
    category = CATEGORIES[index % len(CATEGORIES)]
    answer = (
        f"Category: {category}\nPriority: {rng.choice(PRIORITIES)}\n"
        + " ".join(rng.choice(pool) for _ in range(rng.randint(1, 3)))
    )
    return prompt, answer


def _gemini(prompt: str, answer: str, system: str | None, history: list[tuple[str, str]] = ()) -> dict:
    example: dict = {}
    if system:
        example["systemInstruction"] = {"parts": [{"text": system}]}
    contents = []
    for question, reply in history:
        contents.append({"role": "user", "parts": [{"text": question}]})
        contents.append({"role": "model", "parts": [{"text": reply}]})
    contents.append({"role": "user", "parts": [{"text": prompt}]})
    contents.append({"role": "model", "parts": [{"text": answer}]})
    example["contents"] = contents
    return example


def _raw_record(rng: random.Random, prompt: str, answer: str) -> dict:
    kind = rng.random()
    if kind < 0.30:
        return _gemini(prompt, answer, SYSTEM_INSTRUCTION)
    if kind < 0.45:
        return {"input": prompt, "output": answer}
    if kind < 0.60:
        return {"input_text": prompt, "output_text": answer}
    if kind < 0.70:
        return {"prompt": prompt, "completion": answer}
    assistant = "assistant" if kind < 0.90 else "model"
    return {"messages": [{"role": "system", "content": SYSTEM_INSTRUCTION}, {"role": "user", "content": prompt},
                         {"role": assistant, "content": answer}]}


def generate_files(directory: Path, size_mb: float, seed: int = 7) -> tuple[Path, Path]:
    """Write raw.jsonl and gemini.jsonl of about ``size_mb`` MB each; deterministic for a seed."""
    rng = random.Random(seed)
    pool = _sentence_pool(rng, 20_000)
    target = int(size_mb * MB)
    gemini_path, raw_path = directory / "gemini.jsonl", directory / "raw.jsonl"
    with gemini_path.open("w", encoding="utf-8", newline="\n") as out:
        written, index, batch = 0, 0, []
        while written < target:
            prompt, answer = _prompt_and_answer(rng, pool, index)
            history = [_prompt_and_answer(rng, pool, index)] if rng.random() < 0.1 else []
            text = json.dumps(_gemini(prompt, answer, SYSTEM_INSTRUCTION, history), ensure_ascii=False,
                              separators=(",", ":")) + "\n"
            batch.append(text)
            written += len(text.encode("utf-8"))
            index += 1
            if len(batch) >= 2_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    with raw_path.open("w", encoding="utf-8", newline="\n") as out:
        written, index, batch, recent = 0, 0, [], []
        while written < target:
            roll = rng.random()
            if roll < 0.005:
                text = "\n"  # blank line
            elif roll < 0.007:
                text = '{"input": "broken line\n'  # unparseable
            elif roll < 0.012 and recent:
                text = rng.choice(recent)  # exact duplicate
            else:
                prompt, answer = _prompt_and_answer(rng, pool, index)
                if roll < 0.014:
                    answer = "Category: other\nPriority: low"  # conflicts with the previous ticket's answer
                    prompt = f"Ticket {index - 1}:" + prompt.split(":", 1)[1]
                text = json.dumps(_raw_record(rng, prompt, answer), ensure_ascii=rng.random() < 0.5) + "\n"
                recent = (recent + [text])[-50:]
                index += 1
            batch.append(text)
            written += len(text.encode("utf-8"))
            if len(batch) >= 2_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    return raw_path, gemini_path


# ----------------------------------------------------------------------------------- measured work (child)


def _child(task: str, path: Path, out_dir: Path) -> None:
    """Run one measured task in this fresh process and print its result as JSON."""
    if task == "bare":
        import json as json_module

        cpu_before, start = _cpu_seconds(), time.perf_counter()
        lines = 0
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    json_module.loads(line)
                except ValueError:
                    pass
                lines += 1
        seconds = time.perf_counter() - start
        detail = {"lines": lines}
    elif task == "validate":
        from gemini_sft.validate import ValidationConfig, validate_dataset

        cpu_before, start = _cpu_seconds(), time.perf_counter()
        report = validate_dataset(path, ValidationConfig())
        seconds = time.perf_counter() - start
        detail = {"examples": report.examples, "valid": report.valid, "errors": report.error_count,
                  "workers": _validate_workers(path)}
    elif task == "clean":
        from gemini_sft.dataset.clean import clean_dataset
        from gemini_sft.dataset.settings import CleanConfig, SplitPaths

        cpu_before, start = _cpu_seconds(), time.perf_counter()
        report = clean_dataset(path, SplitPaths.in_directory(out_dir), CleanConfig())
        seconds = time.perf_counter() - start
        detail = {"rows_read": report.rows_read, "kept": report.kept_rows, "rejected": report.rejected_rows}
    else:
        raise SystemExit(f"unknown task {task}")
    print(json.dumps({"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu_before, **detail}))


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (worker processes)."""
    import resource

    return sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for field in ("ru_utime", "ru_stime")
    )


def _validate_workers(path: Path) -> int:
    from gemini_sft.validate import ValidationConfig, _worker_count

    return _worker_count(ValidationConfig(), path.stat().st_size, sequential=False)


# ----------------------------------------------------------------------------------- measuring (parent)


def _tree_rss_bytes(root: int) -> int:
    """Total RSS of a process and its descendants, from /proc (0 when it is gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[-1].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, []))
    return total


@dataclass
class Measurement:
    task: str
    path: Path
    seconds: float
    peak_bytes: int
    detail: dict
    file_bytes: int
    cpu_seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.file_bytes / MB / self.seconds


def measure(task: str, path: Path, out_dir: Path) -> Measurement:
    """Run ``task`` on ``path`` in a fresh interpreter; wall time of the work and peak memory."""
    command = [sys.executable, __file__, "_child", task, str(path), str(out_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak_tree = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not stop.is_set():
            peak_tree = max(peak_tree, _tree_rss_bytes(process.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{task} failed with exit code {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    seconds = result.pop("seconds")
    cpu_seconds = result.pop("cpu_seconds")
    peak = max(peak_tree, usage.ru_maxrss * 1024)
    return Measurement(task, path, seconds, peak, result, path.stat().st_size, cpu_seconds)


def _best(runs: list[Measurement]) -> Measurement:
    fastest = min(runs, key=lambda m: m.seconds)
    return Measurement(
        fastest.task,
        fastest.path,
        fastest.seconds,
        max(m.peak_bytes for m in runs),
        fastest.detail,
        fastest.file_bytes,
        fastest.cpu_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000.0, help="size of each generated file (1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the fastest counts (1)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (7)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to generate (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="gemini-sft-bench-", dir=args.workdir))
    try:
        started = time.perf_counter()
        raw_path, gemini_path = generate_files(workdir, args.size_mb, args.seed)
        print(
            f"generated {raw_path.stat().st_size / MB:,.0f} MB raw (mixed formats) and "
            f"{gemini_path.stat().st_size / MB:,.0f} MB Gemini-format JSONL in {time.perf_counter() - started:.0f} s "
            f"({workdir})",
            flush=True,
        )
        clean_out = workdir / "clean-out"
        runs: dict[str, list[Measurement]] = {}
        plan = [("bare-gemini", "bare", gemini_path), ("validate", "validate", gemini_path),
                ("bare-raw", "bare", raw_path), ("clean", "clean", raw_path)]
        for _ in range(args.repeat):  # interleaved, so a slow moment of the machine hits every task alike
            for name, task, path in plan:
                runs.setdefault(name, []).append(measure(task, path, clean_out))
                shutil.rmtree(clean_out, ignore_errors=True)
        best = {name: _best(measured) for name, measured in runs.items()}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{'measurement':<34} {'file':<13} {'MB/s':>8} {'seconds':>9} {'CPU s':>8} {'peak RSS MB':>12}")
    labels = {
        "bare-gemini": "(a) bare json.loads loop",
        "validate": "(b) validate_dataset",
        "bare-raw": "(a) bare json.loads loop",
        "clean": "(c) clean_dataset",
    }
    for name in ("bare-gemini", "validate", "bare-raw", "clean"):
        m = best[name]
        print(
            f"{labels[name]:<34} {m.path.name:<13} {m.mb_per_s:>8.1f} {m.seconds:>9.2f} {m.cpu_seconds:>8.2f} "
            f"{m.peak_bytes / MB:>12.0f}"
        )
    print()
    validate_ratio = best["validate"].mb_per_s / best["bare-gemini"].mb_per_s
    clean_ratio = best["clean"].mb_per_s / best["bare-raw"].mb_per_s
    peak = max(m.peak_bytes for m in best.values())
    checks = [
        (f"validate / bare = {validate_ratio:.2f}x (target >= {TARGET_VALIDATE_VS_BARE:.1f}x)",
         validate_ratio >= TARGET_VALIDATE_VS_BARE),
        (f"clean / bare = {clean_ratio:.2f}x (target >= {TARGET_CLEAN_VS_BARE:.1f}x)",
         clean_ratio >= TARGET_CLEAN_VS_BARE),
        (f"peak memory = {peak / MB:,.0f} MB (target < {TARGET_PEAK_BYTES / MB:,.0f} MB)", peak < TARGET_PEAK_BYTES),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    cpu_validate = best["bare-gemini"].cpu_seconds / best["validate"].cpu_seconds
    cpu_clean = best["bare-raw"].cpu_seconds / best["clean"].cpu_seconds
    print(
        f"(for information) throughput per CPU-second vs bare: validate {cpu_validate:.2f}x, clean {cpu_clean:.2f}x "
        "(insensitive to other load on the machine; validate may spread over several processes)"
    )
    print()
    print(f"validate: {json.dumps(best['validate'].detail)}")
    print(f"clean:    {json.dumps(best['clean'].detail)}")
    print(
        f"cpus available: {len(os.sched_getaffinity(0))}; load average before/after: {load_before:.2f}/"
        f"{os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(main())
