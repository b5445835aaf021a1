"""``gemini-sft ask``: ask the model in production, with the fallback to the base model.

Read champion.json from the promotion registry, ask the production (tuned) endpoint and return its
answer, or the base model's when the tuned answer is empty, blocked, cut at max tokens, repetitive,
breaks the output contract learned from the training data, or has a low average log-probability.
Says which model answered and why. An open model in production (served by vLLM) is asked through its
endpoint and falls back to a Gemini model (--base-model, else the config's base_model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``ask`` sub-command."""
    from gemini_sft.cli.status import add_registry_command

    parser = add_registry_command(
        subparsers, "ask", ask_command, "ask the production model (falls back to the base model on an unfit answer)",
        __doc__,
    )
    parser.add_argument("prompt", metavar="PROMPT", help="the question ('-' reads it from standard input)")
    parser.add_argument("--json", action="store_true",
                        help='print {"text", "answered_by", "model", "fallback_reason", "notes"}')
    parser.add_argument("--key", default=None,
                        help="request key for sticky canary routing, e.g. a user id (default: the prompt)")
    parser.add_argument("--contract", type=Path, default=None, metavar="FILE",
                        help="output contract JSON for the production model (default: the one in the registry)")
    parser.add_argument("--base-model", default="",
                        help="fallback model (default: the production model's base; for an open model in production, "
                             "the config's base_model, else the catalogue's default Gemini model)")
    parser.add_argument("--api-endpoint", default=None,
                        help="Vertex-compatible API endpoint (default: the config's, $VERTEX_API_ENDPOINT, else Vertex)")
    parser.add_argument("--max-output-tokens", type=int, default=1024, help="answer length cap (default 1024)")
    parser.add_argument("--min-avg-logprob", type=float, default=-1.0,
                        help="fall back below this average token log-probability (default -1.0)")
    parser.add_argument("--no-logprobs", action="store_true", help="do not ask for log-probabilities")


def ask_command(args: argparse.Namespace) -> int:
    """Print the answer (or JSON); the model and any fallback go to stderr in text mode."""
    from gemini_sft.cli.status import registry_uri_of
    from gemini_sft.errors import ConfigError
    from gemini_sft.serving import FallbackRules, OutputContract, ServingClient, ServingSettings
    from gemini_sft.vertex_client import quiet_http_logs

    quiet_http_logs()
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    uri, config = registry_uri_of(args)
    contract = None
    if args.contract is not None:
        if not args.contract.is_file():
            raise ConfigError(f"--contract {args.contract} does not exist.")
        contract = OutputContract.from_json(args.contract.read_text(encoding="utf-8"), source=str(args.contract))
    settings = ServingSettings(
        max_output_tokens=args.max_output_tokens,
        rules=FallbackRules(min_avg_logprob=args.min_avg_logprob),
        ask_logprobs=not args.no_logprobs,
    )
    client = ServingClient.from_registry(
        uri,
        project=config.project if config else "",
        location=config.region if config else "",
        api_endpoint=args.api_endpoint or (config.api_endpoint if config and config.api_endpoint else None),
        settings=settings,
        base_model=args.base_model,
        contract=contract,
        gemini_fallback=str(config.parameters.get("base_model") or "") if config else "",
    )
    notes: list[str] = []
    if client.plan.contract_for(client.plan.production) is None:
        notes.append("no output contract is stored for the production model: contract checks are off")
    answer = client.ask(prompt, request_key=args.key)
    notes.extend(answer.notes)
    if args.json:
        print(json.dumps({**answer.to_dict(), "notes": notes}, ensure_ascii=False, indent=2))
        return 0
    print(answer.text)
    how = f"answered by the {answer.answered_by} model {answer.model}"
    if answer.fallback_reason:
        how += f" (fallback: {answer.fallback_reason})"
    print(how, file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
