"""What a training or serving machine costs per hour, and how fast a GPU is assumed to train, from one data file.

The catalogue is ``gemini_sft/data/machines.json`` (:data:`MACHINES_FILE`), kept
like the model catalogue (:mod:`gemini_sft.model_catalog`): per machine its GPU
type, count and memory and its on-demand list price in USD per hour per region,
each group with the page it was read from, when, and whether it was verified.
A g2/a2/a3 machine's price includes its GPUs; an n1 machine is priced as the
machine plus its attached GPUs (``attachable_accelerators``). The file also
states the training tokens per second assumed per GPU type, which estimates made
before a run use (see :mod:`gemini_sft.open_weights.costs`).

A machine (or GPU) the file does not know is not an error: :meth:`MachineCatalog.hourly_price`
warns, naming the file and how to add it, and returns None; costs then say
"unknown price".
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.errors import ConfigError

log = logging.getLogger(__name__)

MACHINES_FILE = Path(__file__).resolve().parent / "data" / "machines.json"


class UncataloguedMachineWarning(UserWarning):
    """A machine or GPU type the machine catalogue does not know was priced: its cost is unknown."""


@dataclass(frozen=True)
class Provenance:
    """Where a group of values was read, when, and whether it was checked against that page."""

    source: str
    read_on: str
    verified: bool


@dataclass(frozen=True)
class MachineSpec:
    """A machine as a job asks for it: Vertex machine type, GPU type ("" for none) and GPU count."""

    machine_type: str
    accelerator_type: str = ""
    accelerator_count: int = 0


@dataclass(frozen=True)
class CatalogMachine:
    """One machine type: its built-in GPUs (none for n1) and its hourly list price per region."""

    name: str
    gpu_type: str
    gpu_count: int
    gpu_memory_gb: float
    usd_per_hour: dict[str, float]
    provenance: Provenance


@dataclass(frozen=True)
class AttachableAccelerator:
    """A GPU attached to an n1 machine, priced per GPU and hour per region."""

    name: str
    gpu_memory_gb: float
    usd_per_hour_per_gpu: dict[str, float]
    provenance: Provenance


@dataclass(frozen=True)
class MachinePrice:
    """The hourly list price of a machine with its GPUs, in one region, and how it was made."""

    machine: MachineSpec
    region: str
    usd_per_hour: float
    verified: bool
    basis: str


@dataclass(frozen=True)
class TrainingThroughput:
    """Training tokens per second assumed for one GPU type (see the file's ``training_throughput.about``)."""

    accelerator_type: str
    tokens_per_second_per_gpu: float
    reference_model: str
    provenance: Provenance


@dataclass(frozen=True)
class MachineCatalog:
    """The parsed machine catalogue file."""

    path: Path
    default_region: str
    machines: dict[str, CatalogMachine]
    accelerators: dict[str, AttachableAccelerator]
    throughput: dict[str, TrainingThroughput]

    def _regional(self, prices: Mapping[str, float], region: str) -> tuple[str, float] | None:
        if region in prices:
            return region, prices[region]
        if self.default_region in prices:
            return self.default_region, prices[self.default_region]
        return None

    def hourly_price(self, spec: MachineSpec, region: str = "") -> MachinePrice | None:
        """The on-demand price of a machine (with its attached GPUs on an n1) in ``region``.

        A region the entry does not list is priced at the file's default region, and the basis says so.

        Args:
            spec: the machine type, e.g. ``g2-standard-8``, and its GPUs; attached GPUs are priced only on a
                machine without built-in GPUs.
            region: the Vertex region ("" for the file's default region).

        Returns:
            The price, or None (with an :class:`UncataloguedMachineWarning` naming the file) when the machine
            or its attached GPU is not in the file.
        """
        machine_type, accelerator_type, count = spec.machine_type, spec.accelerator_type, spec.accelerator_count
        machine = self.machines.get(machine_type)
        wanted = region or self.default_region
        if machine is None:
            self._warn(f"Machine type {machine_type!r}")
            return None
        found = self._regional(machine.usd_per_hour, wanted)
        if found is None:
            self._warn(f"A price of machine type {machine_type!r}")
            return None
        used_region, price = found
        parts = [f"{machine_type} ${price:g}/h"]
        verified = machine.provenance.verified
        if machine.gpu_count == 0 and accelerator_type and count > 0:
            gpu = self.accelerators.get(accelerator_type)
            gpu_price = self._regional(gpu.usd_per_hour_per_gpu, used_region) if gpu is not None else None
            if gpu is None or gpu_price is None:
                self._warn(f"Attachable GPU type {accelerator_type!r}")
                return None
            price += count * gpu_price[1]
            parts.append(f"{count} x {accelerator_type} ${gpu_price[1]:g}/h")
            verified = verified and gpu.provenance.verified
        basis = " + ".join(parts) + f" ({used_region}"
        basis += f", the file's default region: {wanted} is not listed)" if used_region != wanted else ")"
        basis += "" if verified else ", unverified list price"
        return MachinePrice(spec, used_region, price, verified, basis)

    def training_throughput(self, accelerator_type: str) -> TrainingThroughput | None:
        """The tokens per second per GPU assumed for training on ``accelerator_type``; None (and a warning) if unknown."""
        found = self.throughput.get(accelerator_type)
        if found is None:
            self._warn(f"The training throughput of GPU type {accelerator_type!r}")
        return found

    def _warn(self, what: str) -> None:
        message = (f"{what} is not in the machine catalogue {self.path}: its cost is an unknown price. "
                   "Add it to that file (copy an entry and fill in its values) to price it.")
        warnings.warn(message, UncataloguedMachineWarning, stacklevel=3)
        log.warning("%s", message)


def _provenance(raw: Mapping[str, Any]) -> Provenance:
    return Provenance(str(raw.get("source", "")), str(raw.get("read_on", "")), bool(raw.get("verified", False)))


def _prices(raw: Any, what: str) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{what} must map a region to USD per hour")
    prices = {str(region): float(value) for region, value in raw.items()}
    if any(value < 0 for value in prices.values()):
        raise ValueError(f"{what} has a negative price")
    return prices


def load_machine_catalog(path: Path = MACHINES_FILE) -> MachineCatalog:
    """Parse a machine catalogue file.

    Args:
        path: the JSON file (default the shipped ``machines.json``).

    Raises:
        ConfigError: naming the file (and the entry) when it cannot be read or an entry is malformed.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"Cannot read the machine catalogue {path}: {exc}") from exc
    name = "?"
    try:
        machines = {}
        for name, entry in (raw.get("machines") or {}).items():
            machines[name] = CatalogMachine(
                name=name, gpu_type=str(entry.get("gpu_type", "")), gpu_count=int(entry.get("gpu_count", 0)),
                gpu_memory_gb=float(entry.get("gpu_memory_gb", 0)),
                usd_per_hour=_prices(entry.get("on_demand_usd_per_hour"), "on_demand_usd_per_hour"),
                provenance=_provenance(entry),
            )
        accelerators = {}
        for name, entry in (raw.get("attachable_accelerators") or {}).items():
            accelerators[name] = AttachableAccelerator(
                name=name, gpu_memory_gb=float(entry.get("gpu_memory_gb", 0)),
                usd_per_hour_per_gpu=_prices(entry.get("on_demand_usd_per_hour_per_gpu"),
                                             "on_demand_usd_per_hour_per_gpu"),
                provenance=_provenance(entry),
            )
        name = "training_throughput"
        section = raw.get("training_throughput") or {}
        throughput = {
            gpu: TrainingThroughput(gpu, float(value), str(section.get("reference_model", "")), _provenance(section))
            for gpu, value in (section.get("tokens_per_second_per_gpu") or {}).items()
        }
        if any(t.tokens_per_second_per_gpu <= 0 for t in throughput.values()):
            raise ValueError("tokens per second must be above 0")
    except (AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"Entry {name!r} of the machine catalogue {path} is malformed ({exc}); fix it.") from exc
    return MachineCatalog(Path(path), str(raw.get("default_region") or "us-central1"), machines, accelerators,
                          throughput)


@functools.lru_cache(maxsize=1)
def machine_catalog() -> MachineCatalog:
    """The shipped machine catalogue, read once."""
    return load_machine_catalog(MACHINES_FILE)
