"""``gemini-sft validate``: exit codes, --json shape, readable output, budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.examples import make_example


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(item + "\n" for item in lines), encoding="utf-8")
    return path


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "train.jsonl",
        [json.dumps(make_example(f"question {i}", f"answer {i}", "Be brief.")) for i in range(120)],
    )


@pytest.fixture
def invalid_file(tmp_path: Path) -> Path:
    good = json.dumps(make_example("q", "a", "Be brief."))
    bad_role = json.dumps({"contents": [{"role": "user", "parts": [{"text": "q"}]},
                                        {"role": "assistant", "parts": [{"text": "a"}]}]})
    return write(tmp_path / "bad.jsonl", [good, bad_role, "not json", good, bad_role])


def test_valid_file_exits_0_with_a_summary(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(valid_file)]) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and "INVALID" not in out
    assert "Examples" in out and "120" in out
    assert "Estimated cost" in out and "offline estimate" in out


def test_invalid_file_exits_1_and_groups_errors_by_code(invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(invalid_file)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert "invalid_role (2)" in out
    assert "line 2:" in out and "line 5:" in out
    assert "invalid_json (1)" in out and "line 3:" in out


def test_json_output_has_exactly_the_documented_shape(invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(invalid_file), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["valid", "examples", "errors", "warnings", "token_stats", "estimated_cost_usd", "costs",
                              "within_budget"]
    assert document["valid"] is False
    assert document["examples"] == 5
    assert [(e["line"], e["code"]) for e in document["errors"]] == [
        (2, "invalid_role"), (3, "invalid_json"), (5, "invalid_role")
    ]
    assert all(set(e) == {"line", "code", "message"} for e in document["errors"] + document["warnings"])
    assert set(document["token_stats"]) == {"examples", "min", "mean", "p50", "p95", "max", "total"}
    assert isinstance(document["estimated_cost_usd"], float)


def test_json_for_a_valid_file(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(valid_file), "--json", "--epochs", "2", "--price-per-million-usd", "1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is True and document["errors"] == []
    expected = (document["token_stats"]["total"] + 8 * 120) * 2 * 1.0 / 1e6
    assert document["estimated_cost_usd"] == pytest.approx(expected)


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_unknown_model_is_a_usage_error(valid_file: Path) -> None:
    assert main(["validate", str(valid_file), "--model", "gemini-1.0-pro"]) == 2


def test_api_endpoint_without_project_is_a_usage_error(valid_file: Path) -> None:
    assert main(["validate", str(valid_file), "--api-endpoint", "http://127.0.0.1:9"]) == 2


def test_bad_option_is_a_usage_error(valid_file: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["validate", str(valid_file), "--epochs", "many"])
    assert raised.value.code == 2


def test_over_budget_exits_1_with_both_figures(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(valid_file), "--max-budget-usd", "0.000001"]) == 1
    captured = capsys.readouterr()
    assert "above the budget" in captured.err and "$1e-06" in captured.err
    assert main(["validate", str(valid_file), "--max-budget-usd", "1000"]) == 0


def test_validation_file_gets_its_own_report(valid_file: Path, invalid_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(valid_file), str(invalid_file), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False
    assert document["errors"] == []
    assert document["validation"]["valid"] is False
    assert document["validation"]["examples"] == 5


def test_progress_bar_is_drawn_on_stderr_for_large_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gemini_sft.cli import validate as cli_validate

    monkeypatch.setattr(cli_validate, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr(cli_validate, "PROGRESS_ALWAYS_BYTES", 1)
    path = write(tmp_path / "t.jsonl", [json.dumps(make_example("q", "a"))] * 10)
    assert main(["validate", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "validating t.jsonl" in captured.err
    json.loads(captured.out)  # stdout stays pure JSON
    assert main(["validate", str(path), "--json", "--no-progress"]) == 0
    assert "validating" not in capsys.readouterr().err


def test_project_and_endpoint_count_tokens_with_the_api(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    standin = pytest.importorskip("gemini_sft.standin")
    with standin.VertexStandIn() as server:
        code = main(["validate", str(valid_file), "--project", "p", "--api-endpoint", server.base_url])
    assert code == 0
    assert "countTokens API" in capsys.readouterr().out


def test_a_directory_is_one_clear_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"gemini-sft validate: {tmp_path}: is a directory; pass the JSONL file in it, e.g. {tmp_path / 'train.jsonl'}"
    ]


def test_a_binary_file_is_one_clear_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"gemini-sft validate: {path}: is not a text file (byte 8 is a NUL byte")


def test_a_utf16_validation_file_is_one_clear_usage_error(valid_file: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "validation.jsonl"
    path.write_text(valid_file.read_text(encoding="utf-8"), encoding="utf-16")
    assert main(["validate", str(valid_file), str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{path}: is not a text file" in line and "UTF-16" in line


def test_a_latin1_file_is_one_clear_usage_error_naming_the_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(make_example("q", "a"))
    path.write_bytes((good + "\n" + json.dumps(make_example("café", "a"), ensure_ascii=False) + "\n").encode("latin-1"))
    assert main(["validate", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"gemini-sft validate: {path}: is not UTF-8 text (byte ")
    assert "on line 2" in line and "iconv" in line


def test_a_compressed_file_is_still_reported_as_compressed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps(make_example("q", "a")).encode() + b"\n"))
    assert main(["validate", str(path), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [error["code"] for error in document["errors"]] == ["compressed_file"]
