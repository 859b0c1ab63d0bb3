"""hpt: hierarchical self-supervised pretraining from existing pretrained models."""

__version__ = "0.1.0"
