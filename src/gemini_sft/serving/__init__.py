"""Serving a tuned model with a safety net: the client applications import, its fallback rules, canary and shadow.

* :class:`ServingClient` (``client``): ask the model in production; unfit answers fall back to the base model.
* :func:`fallback_reason` (``fallback``): the rules, a pure function an evaluation can call on its own answers.
* :class:`OutputContract` / :func:`learn_output_contract` (``contract``): the format learned from training answers.
* :func:`goes_to_canary` / :class:`ShadowLog` (``canary``): sticky canary routing and the shadow log.
"""

from gemini_sft.serving.canary import ShadowEntry, ShadowLog, canary_position, goes_to_canary
from gemini_sft.serving.client import (
    ServedAnswer,
    ServingClient,
    ServingPlan,
    ServingSettings,
    read_contract,
    read_serving_plan,
    save_contract,
)
from gemini_sft.serving.contract import OutputContract, learn_output_contract
from gemini_sft.serving.fallback import FALLBACK_REASONS, FallbackRules, fallback_reason
from gemini_sft.serving.reply import ModelReply, ReplyRequest

__all__ = [
    "FALLBACK_REASONS",
    "FallbackRules",
    "ModelReply",
    "OutputContract",
    "ReplyRequest",
    "ServedAnswer",
    "ServingClient",
    "ServingPlan",
    "ServingSettings",
    "ShadowEntry",
    "ShadowLog",
    "canary_position",
    "fallback_reason",
    "goes_to_canary",
    "learn_output_contract",
    "read_contract",
    "read_serving_plan",
    "save_contract",
]
