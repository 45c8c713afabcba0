"""The resumable training loop shared by `train_nerv`, `train_ffn` and `train_ffn_batch`.

A trainer describes its arithmetic as a `Fit` (one epoch or step, one evaluation, what a state
file holds); `Loop` counts the epochs or steps, evaluates every `eval_every` and after the last,
feeds the progress bar, hands a state to `save` every `checkpoint_every` and keeps the clock
across interruptions. `run_resumable` adds the state file of one model: continued from when it
is this run's (xinc.train.resume), else training starts from scratch.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from xinc.train.common import LOG, progress_bar
from xinc.train.resume import load_state, restore_rng_states, rng_states


class Fit(ABC):
    """One trainer's part of the loop: its model, optimizer, history and best weights."""

    device: torch.device
    generator: torch.Generator | None = None  # a data-order RNG saved with the torch RNGs

    @abstractmethod
    def step(self, index: int) -> None:
        """Train epoch or step `index` (0-based)."""

    @abstractmethod
    def evaluate(self, done: int) -> None:
        """Evaluate after `done` epochs or steps: extend the history, keep the best weights."""

    @abstractmethod
    def postfix(self, evaluated: bool) -> dict[str, str] | None:
        """What the progress bar shows after this epoch or step (None: leave it)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """This fit's part of a state file: weights, optimizer, history, best weights."""

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a state file's content (the inverse of `state`)."""


@dataclass
class Loop:
    """`total` epochs or steps (`unit`, also the state file's key of the count reached)."""

    unit: str
    total: int
    eval_every: int
    checkpoint_every: int  # 0 = never
    save: Callable[[dict[str, Any]], None]  # writes a state file's content
    seconds_before: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        """Seconds of training, those of the interrupted runs before this one included."""
        return self.seconds_before + time.perf_counter() - self.start

    def resume(self, fit: Fit, state: dict[str, Any] | None) -> int:
        """Restore `fit` from `state` (None: a fresh start); the first epoch or step to run."""
        if state is None:
            return 0
        fit.restore(state)
        restore_rng_states(state["rng"], fit.device, fit.generator)
        self.seconds_before = state["seconds"]
        return state[self.unit]

    def run(self, fit: Fit, bar: tqdm, first: int = 0) -> None:
        """Train from `first` to `total`; the state is saved after every `checkpoint_every`
        epochs or steps except the last (the trainer writes its outputs then)."""
        bar.update(first)
        for index in range(first, self.total):
            fit.step(index)
            done = index + 1
            evaluated = done % self.eval_every == 0 or done == self.total
            if evaluated:
                fit.evaluate(done)
            postfix = fit.postfix(evaluated)
            if postfix is not None:
                bar.set_postfix(**postfix, refresh=False)
            bar.update()
            if self.checkpoint_every and done % self.checkpoint_every == 0 and done < self.total:
                self.save({self.unit: done, **fit.state(),
                           "rng": rng_states(fit.device, fit.generator),
                           "seconds": self.seconds()})


def run_resumable(fit: Fit, loop: Loop, state_file: Path, run_id: dict[str, Any], *,
                  name: str, progress: bool) -> None:
    """Run `loop` on the model `name` ("NeRV", "FFN"), from `state_file` when that holds a
    state of this run (`run_id`), else from scratch."""
    state = load_state(state_file, run_id, map_location=fit.device)
    first = loop.resume(fit, state)
    if state is not None:
        LOG.info("resumed %s training from %s at %s %d/%d", name, state_file, loop.unit, first,
                 loop.total)
    with progress_bar(loop.total, f"{name.lower()} {loop.unit}s", progress) as bar:
        loop.run(fit, bar, first)
