"""Self-supervised losses as pure functions over tensors (one file per loss)."""

from hpt.losses.infonce import infonce_in_batch, infonce_loss

__all__ = ["infonce_in_batch", "infonce_loss"]
