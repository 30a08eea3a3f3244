"""Stop a running ``model.generate`` from another thread: a stopping criterion that reads a ``threading.Event``.

``generate`` checks its stopping criteria after every new token (transformers ``generation/stopping_criteria.py``),
so once the event is set the generation ends within one token and ``generate`` returns the ids written so far.
Imported lazily by :mod:`assistant.chat.generation` (it needs torch and transformers).
"""

from __future__ import annotations

import threading

import torch
from transformers import StoppingCriteria


class CancelOnEvent(StoppingCriteria):
    """Stop every sequence of the batch once ``event`` is set; ``fired`` records that it did.

    Args:
        event: set from any thread (a closed tab, a Streamlit rerun, a timeout) to stop the generation.
    """

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.fired = False

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        """``input_ids`` (B, T) -> (B,) booleans, all True once the event is set."""
        stop = self.event.is_set()
        self.fired = self.fired or stop
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)
