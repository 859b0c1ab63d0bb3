"""Fine-tuning with few labels: the semi-supervised setting of HPT (Reed et al., WACV 2022, Sec. 5.4).

The whole backbone and a new linear head train on a fraction of the labels (`1%`, `10%`, `N-shot` per class,
or `all`), with the head's learning rate 100x the backbone's as in HPT, SGD with momentum 0.9, a cosine
schedule, random-resized-crop and flip augmentation; the test split is scored with the evaluation view.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from hpt.backbones import Backbone
from hpt.core.param_groups import param_groups
from hpt.core.schedule import cosine_schedule
from hpt.data.dataset import ImageDataset, forever
from hpt.data.decode import RGB, Decoding
from hpt.data.files import ImageList
from hpt.data.views import eval_view
from hpt.errors import HptError
from hpt.eval.features import extract_features

HEAD_LR_MULTIPLIER = 100


@dataclass(frozen=True)
class FinetuneSettings:
    labels: str = "10%"
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.001
    weight_decay: float = 1e-4
    seed: int = 0


def select_labels(labels: list[int], spec: str, seed: int = 0) -> list[int]:
    """Indices of the labelled images to train on: per class, `P%` of its images (at least one), `N-shot`
    (exactly N; an error when a class has fewer), or `all`. The same seed gives the same choice."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)%|(\d+)-shot|all)", spec.strip())
    if match is None:
        raise HptError(f"--labels '{spec}': expected P% (e.g. 1%, 10%), N-shot (e.g. 5-shot) or all")
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    chosen: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        if match.group(1):
            if not 0 < float(match.group(1)) <= 100:
                raise HptError(f"--labels {spec}: expected a share above 0% and at most 100%")
            count = max(1, round(float(match.group(1)) / 100 * len(members)))
        elif match.group(2):
            count = int(match.group(2))
            if count < 1:
                raise HptError(f"--labels {spec}: expected at least 1-shot")
            if count > len(members):
                raise HptError(f"--labels {spec}: class {label} has only {len(members)} images")
        else:
            count = len(members)
        order = torch.randperm(len(members), generator=generator)[:count]
        chosen += [members[i] for i in order.tolist()]
    return sorted(chosen)


def finetune(
    backbone: Backbone,
    train: ImageList,
    test: ImageList,
    image_size: int,
    mean,
    std,
    settings: FinetuneSettings,
    device: torch.device | str = "cpu",
    decoding: Decoding = RGB,
) -> tuple[dict[str, float], dict, dict[str, torch.Tensor]]:
    """(metrics, settings, each test image's outcome per accuracy)."""
    if train.labels is None or train.classes is None:
        raise HptError("the finetune protocol needs one label per image")
    chosen = select_labels(train.labels, settings.labels, settings.seed)
    torch.manual_seed(settings.seed)
    model = copy.deepcopy(backbone).to(device).train()
    head = nn.Linear(model.num_features, len(train.classes)).to(device)
    augment = v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=(0.5, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )
    batch_size = min(settings.batch_size, len(chosen))
    loader = DataLoader(
        Subset(ImageDataset(train, augment, decoding), chosen),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    groups = param_groups(model, settings.weight_decay)
    for group in param_groups(head, settings.weight_decay):
        group["lr_scale"] = HEAD_LR_MULTIPLIER
        groups.append(group)
    optimizer = torch.optim.SGD(groups, lr=settings.lr, momentum=0.9)
    lr_at = cosine_schedule(settings.lr, 0.0, settings.steps)
    batches = forever(loader)
    for step in range(settings.steps):
        images, labels = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = float(lr_at[step]) * group.get("lr_scale", 1)
        loss = F.cross_entropy(head(model(images.to(device))), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    test_images = ImageDataset(test, eval_view(image_size, mean, std), decoding)
    features, labels = extract_features(model, test_images, 256, 0, device)
    with torch.no_grad():
        predictions = head.eval()(features.to(device)).argmax(dim=1).cpu()
    correct = predictions == labels
    return (
        {"finetune_top1": float(correct.float().mean())},
        {
            "labels": settings.labels,
            "labelled_images": len(chosen),
            "steps": settings.steps,
            "lr": settings.lr,
            "head_lr_multiplier": HEAD_LR_MULTIPLIER,
            "batch_size": batch_size,
            "seed": settings.seed,
        },
        {"finetune_top1": correct},
    )
