"""Keep the base's BatchNorm statistics while continuing to pretrain (`transfer.freeze_bn_statistics`).

In training mode every BatchNorm layer normalises with the batch's own statistics and pulls its running
statistics towards them. Continuing from a base, those batches are heavily augmented crops of a small target
(grey digits, clothes), and within tens of steps the base's running statistics, which everything after each
layer was trained to expect, are replaced: measured on Fashion-MNIST and MNIST-5k at 32 px, a base's linear
probe loses 5-10 points in 20 steps even at a learning rate of 0.0003 (benchmarks/continue_from_base.py).
Frozen, the backbone's BatchNorm layers stay in evaluation mode: they normalise with the base's statistics
during training too (as detection fine-tuning does with frozen BN), and their affine parameters still train.
Heads keep ordinary BatchNorm. This is hpt's addition, not part of HPT or of Ciga et al.
"""

from __future__ import annotations

from torch import nn

from hpt.backbones import Backbone
from hpt.config import TransferConfig
from hpt.transfer.layers import batch_norms


def freezes_batch_norm_statistics(transfer: TransferConfig, init: str) -> bool:
    """As configured; by default frozen for `full` from a base, the only recipe of the benchmark that kept or
    improved the base's linear probe on both targets (+13.6 and +0.6 points at HPT's learning rate, against
    -0.2 and -4.8 with training statistics). `bn-only` keeps HPT-BN's own treatment of the statistics."""
    return transfer.freeze_bn_statistics if transfer.freeze_bn_statistics is not None else init == "full"


def hold_batch_norm_statistics(model: nn.Module) -> None:
    """Put every BatchNorm inside a backbone of `model` (the online one and any momentum copy) in eval mode."""
    for module in model.modules():
        if isinstance(module, Backbone):
            for _, norm in batch_norms(module):
                norm.eval()
