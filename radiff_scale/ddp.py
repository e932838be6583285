"""The one DDP unwrap: reach the model inside a DistributedDataParallel-style wrapper.

Training wraps a component for gradient synchronisation, while its config, helpers and
saved weights belong to the inner module. It lives at the top of the package, below
both ``models`` and ``diffusion`` (which each need it), so neither imports the other
for it, and it imports nothing: no torch import just to look up an attribute.
"""

from __future__ import annotations

from typing import TypeVar

M = TypeVar("M")


def unwrap_ddp(module: M) -> M:
    """The wrapped module of a DDP/FSDP-style wrapper, or ``module`` itself when unwrapped.

    Use it for configs, helpers and state dicts, never for a forward pass: only the
    wrapper's forward synchronises gradients.
    """
    return getattr(module, "module", module)
