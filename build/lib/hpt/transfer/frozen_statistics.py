"""Keep the base's BatchNorm statistics while continuing to pretrain (`transfer.freeze_bn_statistics`).

In training mode every BatchNorm layer normalises with the batch's own statistics and pulls its running
statistics towards them. Continuing from a base, those batches are heavily augmented crops of a small target
(grey digits, clothes), and within tens of steps the base's running statistics, which everything after each
layer was trained to expect, are replaced: measured on Fashion-MNIST and MNIST-5k at 32 px, a base's linear
probe lost 5-10 points in 20 steps even at a learning rate of 0.0003 (benchmarks/continue_from_base.py).
Frozen, the backbone's BatchNorm layers stay in evaluation mode: they normalise with the base's statistics
during training too (as detection fine-tuning does with frozen BN), and their affine parameters still train.
Heads keep ordinary BatchNorm. This is hpt's addition, not part of HPT or of Ciga et al.
"""

from __future__ import annotations

from torch import nn

from hpt.backbones import Backbone, batch_norms
from hpt.config import TransferConfig


def freezes_batch_norm_statistics(transfer: TransferConfig, init: str) -> bool:
    """As configured; by default frozen whenever the run starts from a base (`full`, `bn-only`): on both
    benchmark targets it turned HPT's -3.6 and +0.6 points of linear probe (last step, against the base) into
    +10.8 and +10.0, and HPT-BN's -10.0 and -7.8 into +2.6 and +4.4. Frozen, `bn-only` trains only the BN
    affine parameters and does not re-estimate the statistics."""
    return transfer.freeze_bn_statistics if transfer.freeze_bn_statistics is not None else init != "scratch"


def hold_batch_norm_statistics(model: nn.Module) -> None:
    """Put every BatchNorm inside a backbone of `model` (the online one and any momentum copy) in eval mode."""
    for module in model.modules():
        if isinstance(module, Backbone):
            for _, norm in batch_norms(module):
                norm.eval()
