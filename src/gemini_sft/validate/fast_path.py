"""Checking a chunk of lines, with the common valid shape recognised inline.

Most lines of a tuning file are text-only turns alternating user/model with an
optional one-part text system instruction. :func:`check_lines` accepts that
shape without calling any rule and computes the token estimate on the way;
every other line goes through :meth:`ChunkChecker.check_example`, which applies
every rule. The tests hold both paths to the same results.
"""

from __future__ import annotations

import io

from gemini_sft.tokens import TOKENS_PER_TURN, extra_utf8_bytes
from gemini_sft.validate.checker import NEAR_LIMIT_FRACTION, ChunkChecker, ChunkParams, ChunkResult
from gemini_sft.validate.decoding import FAILED, JSON_WHITESPACE, SCAN_ONCE, parse_line


class _NotCommonShape(Exception):
    """Raised inside the fast path when a line needs the complete checks."""


def _extra_bytes_of_texts(instruction_text: str | None, contents: list) -> int:
    """Extra UTF-8 bytes of the texts of an example in the common shape."""
    extra = extra_utf8_bytes(instruction_text) if instruction_text else 0
    for turn in contents:
        for part in turn["parts"]:
            extra += extra_utf8_bytes(part["text"])
    return extra


def check_chunk(data: bytes, first_line: int, params: ChunkParams) -> ChunkResult:
    """Check one chunk of whole lines in this process (the first numbered ``first_line``)."""
    return check_lines(ChunkChecker(params), data, first_line)


def check_lines(checker: ChunkChecker, data: bytes, first_line: int) -> ChunkResult:
    """Check every line of ``data`` (each ending with b"\\n", the first numbered ``first_line``).

    Args:
        checker: records the issues and figures; its result is returned.
        data: whole lines, each ending with a newline.
        first_line: the 1-based number of the first line.
    """
    result = checker.result
    max_tokens = checker.params.max_tokens_per_example
    near_limit = int(max_tokens * NEAR_LIMIT_FRACTION)
    collect = checker.params.collect_for_api
    token_counts = checker.token_counts
    system_instructions = result.system_instructions
    scan_once = SCAN_ONCE
    whitespace = JSON_WHITESPACE
    line_no = first_line - 1
    blank_lines = 0
    missing_instruction = 0
    last_instruction = None
    # BytesIO splits at b"\n" with memchr, much faster than bytes.split
    for line_no, raw in enumerate(io.BytesIO(data), first_line):
        # decode + scan as json.loads does, without its two regex passes per line
        try:
            text = raw.decode("utf-8")
            example, end = scan_once(text, 0)
            # every line ends with "\n"; anything else after the value must be whitespace
            if end != len(text) - 1 and text[end:].strip(whitespace):
                raise ValueError
        except (ValueError, StopIteration, RecursionError):
            example = parse_line(checker, line_no, raw)
            if example is FAILED:
                if not raw.strip(b" \t\r\n"):
                    blank_lines += 1  # reported as blank_line; not an example
                continue
        # Fast path: accept the common valid shape, computing the token estimate on the way
        # (== tokens.estimate_example_tokens; the tests hold them equal). Subscripting and str
        # methods double as type checks (a list has no ["role"], only a str has .isspace(),
        # iterating a non-list fails or yields non-dicts); whatever does not fit raises and gets
        # the complete checks instead.
        try:
            contents = example["contents"]
            if not contents or type(contents) is not list:
                raise _NotCommonShape
            chars = 0
            instruction_text = None
            if len(example) != 1:
                instruction = example["systemInstruction"]
                if len(example) != 2 or len(instruction) != 1:
                    raise _NotCommonShape
                (si_part,) = instruction["parts"]
                instruction_text = si_part["text"]
                if len(si_part) != 1 or not instruction_text or instruction_text.isspace():
                    raise _NotCommonShape
                chars = len(instruction_text)
                turns = len(contents) + 1
            else:
                turns = len(contents)
            if turns & 1 != (instruction_text is not None):
                raise _NotCommonShape  # an odd number of turns cannot alternate from user to model
            user_turn = True
            for turn in contents:
                parts = turn["parts"]
                if len(turn) != 2 or turn["role"] != ("user" if user_turn else "model") or not parts:
                    raise _NotCommonShape
                for part in parts:
                    part_text = part["text"]
                    if len(part) != 1 or not part_text or part_text.isspace():
                        raise _NotCommonShape
                    chars += len(part_text)
                user_turn = not user_turn
            # The extra UTF-8 bytes of the texts: all non-ASCII of a line in this shape is in its
            # texts, so unless \u escapes hide some, they are the line's own extra bytes, known in
            # O(1). Backslashes are found with memchr; after a few, the texts are counted instead.
            extra = len(raw) - len(text)
            backslash = raw.find(b"\\")
            escapes = 0
            while backslash >= 0:
                escapes += 1
                if raw[backslash + 1] == 117 or escapes > 8:  # 117: "u"
                    extra = _extra_bytes_of_texts(instruction_text, contents)
                    break
                backslash = raw.find(b"\\", backslash + 2)
            tokens = TOKENS_PER_TURN * turns + ((chars + extra + 3) >> 2)
        except (_NotCommonShape, KeyError, TypeError, AttributeError, ValueError, IndexError):
            checker.check_example(line_no, example)
            continue
        token_counts.append(tokens)
        if instruction_text is None:
            missing_instruction += 1
            if result.first_missing_system_instruction_line is None:
                result.first_missing_system_instruction_line = line_no
        elif instruction_text != last_instruction:  # usually the same as the line before: no hashing
            if instruction_text not in system_instructions:
                checker.track_system_instruction(instruction_text, line_no)
            last_instruction = instruction_text
        if collect:
            result.for_api.append((line_no, example, tokens))
        elif tokens > near_limit:
            checker.check_token_limit(line_no, tokens)
    lines = line_no - first_line + 1 if data else 0
    result.lines += lines
    result.examples += lines - blank_lines
    result.missing_system_instruction += missing_instruction
    result.token_histogram.update(token_counts)
    token_counts.clear()
    return result
