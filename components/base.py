"""How every component of this project is built: one image, nothing installed at run time."""

from __future__ import annotations

from typing import Callable

from kfp import dsl
from kfp.dsl.python_component import PythonComponent

from gemini_sft import __version__

# The image built from this repository by `make image` (Cloud Build). The checked-in
# spec uses this default; compile with `gemini-sft compile --image URI` for your own.
DEFAULT_IMAGE = f"us-central1-docker.pkg.dev/gemini-sft/gemini-sft/gemini-sft:{__version__}"


def build_component(func: Callable, image: str = DEFAULT_IMAGE) -> PythonComponent:
    """A lightweight component running ``func`` in ``image`` with no run-time installs."""
    return dsl.component(func, base_image=image, install_kfp_package=False)
