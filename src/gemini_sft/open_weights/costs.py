"""What an open-weights run costs at machine list prices: training GPU hours, and serving per 1,000 answers.

An open model is paid per machine hour, not per token. Training costs the
hours the training machine ran times its hourly list price from the machine
catalogue (:mod:`gemini_sft.machine_catalog`): measured hours after a run (the
training step reports GPU hours), or before a run an estimate from the training
tokens and the tokens per second the catalogue assumes for the GPU type
(validate's budget guard, and a run trained on CPU). Serving costs the
endpoint machine's hourly price over the answers it gives in an hour at the
measured seconds per answer. An unknown machine gives an unknown price (None),
never a guessed one. This module imports no machine-learning library.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gemini_sft.cost import format_usd
from gemini_sft.machine_catalog import MachineCatalog, MachineSpec, machine_catalog

SECONDS_PER_HOUR = 3600.0
UNKNOWN_PRICE = "unknown price"


@dataclass(frozen=True)
class PricedFigure:
    """One cost figure and how it was made; ``usd`` None when the price is unknown."""

    usd: float | None
    basis: str
    verified: bool

    def text(self) -> str:
        """The amount for people (``$0.42``), or "unknown price"."""
        return format_usd(self.usd) if self.usd is not None else UNKNOWN_PRICE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingCost:
    """The cost of training on one machine: its GPU hours times its hourly price.

    ``estimated`` is True when the hours come from the catalogue's assumed throughput, not from a run.
    """

    machine: MachineSpec
    training_tokens: int
    gpu_hours: float | None
    estimated: bool
    cost: PricedFigure

    @property
    def budget_usd(self) -> float:
        """The amount a budget is held to: 0 when the price is unknown (the basis says the guard cannot apply)."""
        return self.cost.usd if self.cost.usd is not None else 0.0

    def markdown(self) -> str:
        """One Markdown line stating the figure and its basis."""
        kind = "Estimated open-weights training cost" if self.estimated else "Open-weights training cost"
        line = f"{kind} **{self.cost.text()}**: {self.cost.basis}."
        if self.cost.usd is None:
            line += " The budget guard cannot apply without a price."
        return line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _machine_hours_cost(machine_hours: float, machine: MachineSpec, region: str, catalog: MachineCatalog,
                        hours_basis: str) -> PricedFigure:
    price = catalog.hourly_price(machine, region)
    if price is None:
        return PricedFigure(None, f"{hours_basis}; {machine.machine_type} is not in {catalog.path.name}: "
                                  f"{UNKNOWN_PRICE}", False)
    return PricedFigure(machine_hours * price.usd_per_hour,
                        f"{hours_basis} x {format_usd(price.usd_per_hour)}/h ({price.basis})", price.verified)


def _gpus(machine: MachineSpec, catalog: MachineCatalog) -> int:
    """GPUs of a machine: its built-in ones (g2/a2/a3), else the attached count (0 without a GPU type)."""
    if not machine.accelerator_type:
        return 0
    entry = catalog.machines.get(machine.machine_type)
    built_in = entry.gpu_count if entry is not None else 0
    return built_in or max(machine.accelerator_count, 0)


def estimate_training_cost(
    training_tokens: int,
    machine: MachineSpec,
    *,
    region: str = "",
    catalog: MachineCatalog | None = None,
    tokens_basis: str = "training tokens",
) -> TrainingCost:
    """Training cost estimated before a run: tokens / assumed tokens per second, times the machine's price.

    Args:
        training_tokens: tokens trained on over all epochs.
        machine: the training machine and its GPUs (no GPU type: trains on CPU, no GPU hours).
        region: the Vertex region of the prices ("" the catalogue's default).
        catalog: the machine catalogue (default the shipped one).
        tokens_basis: how the tokens were counted, for the basis text.
    """
    catalog = catalog or machine_catalog()
    gpus = _gpus(machine, catalog)
    if gpus == 0:
        cost = _machine_hours_cost(0.0, MachineSpec(machine.machine_type), region, catalog,
                                   "no GPU (trains on CPU): 0 GPU hours")
        return TrainingCost(machine, training_tokens, 0.0, True, cost)
    throughput = catalog.training_throughput(machine.accelerator_type)
    if throughput is None:
        cost = PricedFigure(None, f"no assumed training throughput for {machine.accelerator_type} in "
                                  f"{catalog.path.name}: {UNKNOWN_PRICE}", False)
        return TrainingCost(machine, training_tokens, None, True, cost)
    machine_hours = training_tokens / (throughput.tokens_per_second_per_gpu * gpus) / SECONDS_PER_HOUR
    hours_basis = (f"{training_tokens:,} {tokens_basis} / ({throughput.tokens_per_second_per_gpu:,.0f} tokens/s per "
                   f"{machine.accelerator_type} x {gpus}, assumed for {throughput.reference_model}"
                   f"{'' if throughput.provenance.verified else ', unverified'}) = {machine_hours * gpus:.4g} GPU hours")
    cost = _machine_hours_cost(machine_hours, machine, region, catalog, hours_basis)
    return TrainingCost(machine, training_tokens, machine_hours * gpus, True, cost)


def measured_training_cost(
    gpu_hours: float,
    training_tokens: int,
    machine: MachineSpec,
    *,
    region: str = "",
    catalog: MachineCatalog | None = None,
) -> TrainingCost:
    """Training cost after a run: the GPU hours it reported, over the machine's GPUs, times its hourly price.

    A run that trained on CPU reported no GPU hours: it is priced as an estimate on the default Vertex
    training machine instead (see :func:`estimate_training_cost`), and the basis says so.

    Args:
        gpu_hours: the GPU hours the training step reported.
        training_tokens: the tokens it trained on (all epochs).
        machine: the machine it ran on and its GPUs.
        region: the Vertex region of the prices.
        catalog: the machine catalogue (default the shipped one).
    """
    catalog = catalog or machine_catalog()
    gpus = _gpus(machine, catalog)
    if gpus == 0:
        from gemini_sft.open_weights.settings import OpenWeightsSettings

        default = OpenWeightsSettings()
        vertex_machine = MachineSpec(default.machine_type, default.accelerator_type, default.accelerator_count)
        estimate = estimate_training_cost(training_tokens, vertex_machine, region=region, catalog=catalog)
        basis = (f"trained on {machine.machine_type} (no GPU); on {default.machine_type}, the default training "
                 f"machine: {estimate.cost.basis}")
        return TrainingCost(vertex_machine, training_tokens, estimate.gpu_hours, True,
                            PricedFigure(estimate.cost.usd, basis, estimate.cost.verified))
    cost = _machine_hours_cost(gpu_hours / gpus, machine, region, catalog,
                               f"{gpu_hours:.4g} GPU hours measured / {gpus} GPU(s) per machine")
    return TrainingCost(machine, training_tokens, gpu_hours, False, cost)


def serving_cost_per_1k_answers(
    seconds_per_answer: float,
    machine: MachineSpec,
    *,
    region: str = "",
    catalog: MachineCatalog | None = None,
    measured_on: str = "",
) -> PricedFigure:
    """What 1,000 answers cost on one serving replica answering one request at a time.

    An upper bound for a batching server (vLLM answers many requests at once); the endpoint is paid
    while it is up, answering or not.

    Args:
        seconds_per_answer: the measured mean seconds per answer.
        machine: the serving machine and its GPUs.
        region: the Vertex region of the prices.
        catalog: the machine catalogue (default the shipped one).
        measured_on: where the seconds were measured, for the basis text.
    """
    catalog = catalog or machine_catalog()
    if not math.isfinite(seconds_per_answer) or seconds_per_answer < 0:
        return PricedFigure(None, "no measured answer time", False)
    hours = 1000 * seconds_per_answer / SECONDS_PER_HOUR
    where = f" measured on {measured_on}" if measured_on else ""
    return _machine_hours_cost(hours, machine, region, catalog,
                               f"1,000 answers x {seconds_per_answer:.3g} s per answer{where}, one at a time")


def open_weights_training_cost(billable_tokens: int, settings: Any) -> TrainingCost | None:
    """Validate's estimate for an open-weights run (None for a Gemini run, which is priced per token).

    The tokens are the training split's Gemini token count (countTokens or the offline estimate, with
    Vertex's per-example padding) times the epochs: the open model's own tokenizer is not loaded before
    training, and tokenizers of this kind count within some tens of percent of each other.

    Args:
        billable_tokens: the training split's billable tokens over all epochs.
        settings: the validate stage's settings (``tuning_backend``, the machine fields, ``location``).
    """
    from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND

    if settings.tuning_backend != OPEN_WEIGHTS_BACKEND:
        return None
    machine = MachineSpec(settings.machine_type, settings.accelerator_type, settings.accelerator_count)
    return estimate_training_cost(billable_tokens, machine, region=settings.location,
                                  tokens_basis="training tokens (Gemini count of the training split x epochs)")
