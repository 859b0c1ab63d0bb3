"""The order a run sees its data in, and the randomness of every view, as functions of the step alone.

A run is counted in steps. Step `s` takes slot `s mod E` of epoch `s div E` (E = images // batch size, the last
partial batch dropped), where each epoch is a permutation drawn from (seed, epoch). Every image of a batch is
transformed under its own seed, drawn from (seed, step, slot in the batch), so a view does not depend on the
number of loader workers, on the batches before it, or on whether the run was killed and resumed in between.
That, with the model, optimiser and RNG state in the checkpoint, is what makes `--resume` bitwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from hpt.core.distributed import batch_slice
from hpt.core.seeds import derived_seed


class StepBatches(Sampler[list[tuple[int, int]]]):
    """An endless batch sampler from `start_step` on: lists of (image index, view seed).

    Across `parts` processes, process `part` takes the `part`-th of `parts` equal, contiguous slices of each
    global batch; the view seeds are those of the global slots, so the processes together see exactly the
    batches, and the views, of one process with the whole batch."""

    def __init__(
        self, num_images: int, batch_size: int, seed: int, start_step: int = 0, part: int = 0, parts: int = 1
    ) -> None:
        if num_images < batch_size:
            raise ValueError(f"{num_images} images cannot fill a batch of {batch_size}")
        if batch_size % parts or not 0 <= part < parts:
            raise ValueError(f"a batch of {batch_size} does not split into {parts} equal parts")
        self.num_images, self.batch_size, self.seed, self.start_step = num_images, batch_size, seed, start_step
        self.per_epoch = num_images // batch_size
        mine = batch_slice(batch_size, part, parts)
        self.mine = range(mine.start, mine.stop)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
        return torch.randperm(self.num_images, generator=generator)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step, epoch, order = self.start_step, -1, torch.empty(0, dtype=torch.long)
        while True:
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = self.epoch_order(epoch)
            slot = step % self.per_epoch
            chosen = order[slot * self.batch_size : (slot + 1) * self.batch_size].tolist()
            yield [(chosen[k], derived_seed(self.seed, step, k)) for k in self.mine]
            step += 1


class SeededItems(Dataset):
    """`dataset[index]` computed under its own torch seed, leaving the caller's RNG state as it was."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU generator the views draw from; torch.manual_seed
            return self.dataset[index]  # would also seed every accelerator: 0.8 ms an image
