"""`hpt embed MODEL... --data DIR --out DIR`: what a backbone learnt, for people without labels.

For each model: the features of every image (`NAME.npy`, float32 N x F, rows in the order of `paths.txt`;
`labels.txt` beside them when the folder has one sub-folder per class). Then two pictures a domain expert
can judge, the models side by side so that the change continued pretraining made is visible:
`map.png`, a 2-D map of the features (UMAP where `umap-learn` is installed, PCA otherwise), coloured by label
when there are labels; and `neighbours.png`, a fixed set of query images (the same for every model), each
followed by its nearest neighbours by cosine similarity.

Every model sees the images in its own recorded preprocessing (window, bands, mean/std) and all at one size
when they record one (a base file, which records none, takes the run's size beside it, not 224 px);
`preprocessing.json` says what each used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.utils import make_grid

from hpt.backbones import Backbone
from hpt.checkpoints.provenance import Origin
from hpt.checkpoints.sources import load_one_of_several, modified_warning
from hpt.core.atomic import check_writable_folder, make_folder, write_text_atomic
from hpt.data.dataset import ImageDataset
from hpt.data.decode import Decoding
from hpt.data.files import ImageList, describe_item, find_images
from hpt.data.stats import pixel_stats
from hpt.data.view_grid import as_rgb
from hpt.data.views import eval_view, resize_crop
from hpt.errors import HptError
from hpt.eval.features import eval_device, extract_features
from hpt.eval.runner import model_decoding, model_image_size, recorded_image_size, recorded_stats
from hpt.extras import pyplot, require

THUMBNAIL = 64
"""Pixels a side of each image in `neighbours.png`."""


@dataclass(frozen=True)
class Embedding:
    name: str
    features: torch.Tensor
    """N x F, float32, rows in the order of the data's images."""
    decoding: Decoding
    """How the model saw the files (intensity window, bands): the pictures show them the same way."""
    preprocessing: dict[str, Any]
    """Its size, mean/std and where they came from, window and bands: written to `preprocessing.json`."""


def embed(
    specs: list[str],
    data: str,
    out: Path,
    backbone_name: str | None = None,
    image_size: int | None = None,
    queries: int = 8,
    neighbours: int = 8,
    seed: int = 0,
) -> list[Path]:
    """Write the feature files and the two pictures; return the paths written."""
    require("plots", "hpt embed (its map.png and neighbours.png)")
    check_writable_folder(out)  # before the features, not after them
    images = find_images(data)
    if len(images) <= neighbours:
        raise HptError(f"--data '{data}' has {len(images)} images: more than --neighbours {neighbours} are needed")
    models = [load_one_of_several(spec, backbone_name, "model") for spec in specs]
    recorded = {size for _, origin in models if (size := recorded_image_size(origin.provenance))}
    shared = recorded.pop() if len(recorded) == 1 else None  # the others' size, for a side-by-side
    embeddings = [_embed_one(spec, model, images, image_size or shared) for spec, model in zip(specs, models)]
    names = _unique([e.name for e in embeddings])
    make_folder(out)
    write_text_atomic(
        out / "preprocessing.json",
        json.dumps(
            {name: e.preprocessing | _warned(origin) for name, e, (_, origin) in zip(names, embeddings, models)},
            indent=2,
        )
        + "\n",  # fmt: skip
    )
    written = [out / "preprocessing.json"]
    for name, embedding in zip(names, embeddings):
        np.save(out / f"{name}.npy", embedding.features.numpy())
        written.append(out / f"{name}.npy")
    write_text_atomic(out / "paths.txt", "".join(f"{describe_item(*item)}\n" for item in images.items()))
    written.append(out / "paths.txt")
    if images.labels is not None and images.classes is not None:
        classes = images.classes
        write_text_atomic(out / "labels.txt", "".join(f"{classes[label]}\n" for label in images.labels))
        written.append(out / "labels.txt")
    written.append(_draw_map(names, embeddings, images, out / "map.png"))
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:queries].tolist()
    written.append(_draw_neighbours(names, embeddings, images, chosen, neighbours, out / "neighbours.png"))
    return written


def _embed_one(spec: str, model: tuple[Backbone, Origin], images: ImageList, image_size: int | None) -> Embedding:
    """One model's features in its own preprocessing (its recorded window and mean/std); its size is
    `image_size` (--image-size, else the size the other models recorded); a model that records no statistics
    is normalised with the data's."""
    backbone, origin = model
    provenance = origin.provenance
    decoding = model_decoding(None, provenance, images, backbone.in_chans)
    size = model_image_size(backbone, provenance, image_size)
    stats = recorded_stats(provenance, backbone.in_chans)
    source = "recorded by the model" if stats else "the data's (the model records none)"
    stats = stats or pixel_stats(images, size, 5000, decoding=decoding)
    dataset = ImageDataset(images, eval_view(size, stats.mean, stats.std), decoding)
    features, _ = extract_features(backbone, dataset, device=eval_device())
    preprocessing = {"image_size": size, "mean": list(stats.mean), "std": list(stats.std), "source": source}
    return Embedding(_name(spec), features, decoding, {**preprocessing, **decoding.to_dict()})


def _name(spec: str) -> str:
    path = Path(spec)
    if path.is_dir():
        return path.name
    return path.name.split(".")[0] if path.is_file() else spec.replace(":", "-").replace("/", "-")


def _warned(origin: Origin) -> dict[str, str]:
    """A model modified since hpt wrote it (`modified_warning`), named beside its preprocessing."""
    return {"warning": warning} if (warning := modified_warning(origin)) else {}


def _unique(names: list[str]) -> list[str]:
    return [name if names.count(name) == 1 else f"{i + 1}-{name}" for i, name in enumerate(names)]


def _map_2d(features: torch.Tensor) -> tuple[np.ndarray, str]:
    try:
        import umap
    except ImportError:
        centred = features - features.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        return (centred @ v[:2].T).numpy(), "PCA"
    return umap.UMAP(n_components=2, random_state=0).fit_transform(features.numpy()), "UMAP"


def _draw_map(names: list[str], embeddings: list[Embedding], images: ImageList, path: Path) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.8), squeeze=False)
    colours = np.asarray(images.labels) if images.labels is not None else None
    for axis, name, embedding in zip(axes[0], names, embeddings):
        points, method = _map_2d(embedding.features)
        scatter = axis.scatter(points[:, 0], points[:, 1], c=colours, cmap="tab10", s=6)
        axis.set_title(f"{name} ({method})")
        axis.set_xticks([])
        axis.set_yticks([])
    if colours is not None and images.classes is not None:
        handles, _ = scatter.legend_elements()
        axes[0][-1].legend(handles, images.classes, fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def nearest(features: torch.Tensor, queries: list[int], count: int) -> torch.Tensor:
    """len(queries) x count: each query's nearest other images by cosine similarity, nearest first."""
    unit = torch.nn.functional.normalize(features, dim=1)
    similarity = unit[queries] @ unit.T
    similarity[torch.arange(len(queries)), queries] = -2.0  # never the query itself
    return similarity.topk(count, dim=1).indices


def _draw_neighbours(
    names: list[str], embeddings: list[Embedding], images: ImageList, queries: list[int], count: int, path: Path
) -> Path:
    thumbnail = resize_crop(THUMBNAIL)
    decoding = embeddings[0].decoding  # the first model's window: a 12-bit scan at the 16-bit range is black

    def tile(index: int) -> torch.Tensor:
        pixels = decoding(*images.item(index))
        if isinstance(pixels, torch.Tensor):  # multi-band: its first three bands as RGB (fewer: the first, grey)
            pixels = as_rgb(pixels)
        return thumbnail(pixels)

    plt = pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 0.5 * len(queries) + 1), squeeze=False)
    for axis, name, embedding in zip(axes[0], names, embeddings):
        found = nearest(embedding.features, queries, count)
        tiles = [tile(i) for q, row in zip(queries, found.tolist()) for i in (q, *row)]
        grid = make_grid(torch.stack(tiles), nrow=count + 1, padding=2, pad_value=1.0)
        axis.imshow(grid.permute(1, 2, 0).numpy())
        axis.set_title(f"{name}: query, {count} nearest", fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
