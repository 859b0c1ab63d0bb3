"""Typed configuration with every default in one place.

A YAML file is a small diff over these defaults; CLI flags are a diff over the file. Unknown keys, wrong
types and out-of-range values are errors that name the key (`HptError`), raised before any work starts.
"""

from __future__ import annotations

import copy
import math
import os
import signal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hpt.errors import HptError

ViewPolicy = Literal["full", "no-color", "no-grayscale", "crop-blur", "crop-only", "rotation", "scan", "scan-rotation"]
Init = Literal["full", "scratch", "bn-only", "norm-only", "partial", "lora"]
Method = Literal["mocov2", "simclr", "byol", "swav", "dino", "distill"]
"""The names of `hpt.methods.METHODS` (tests/test_registries.py holds the two equal): each has a `MethodSection` of
its name below and its record in its own file, `hpt/methods/NAME.py`."""
Precision = Literal["auto", "32-true", "32", "bf16-mixed", "16-mixed"]
Strategy = Literal["auto", "ddp"]
LoggerName = Literal["tensorboard", "csv", "mlflow", "wandb"]
Optimiser = Literal["sgd", "adamw", "lars"]


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True, allow_inf_nan=False
    )  # every number a finite one: `optim.lr=1e309` is an error, not infinity

    @field_validator("*", mode="before")
    @classmethod
    def _yes_no_is_not_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """No true/false where a number or a name is expected (`train.steps=yes` would be 1 step, `monitor.every=off`
        0), and nothing but true/false where a switch is (`1`, `"off"`): what pydantic's lax mode would turn into
        a value the user did not write."""
        annotation = cls.model_fields[str(info.field_name)].annotation
        kinds = _kinds(annotation)
        items = _item_kinds(annotation)
        if isinstance(value, list | tuple) and items and bool not in items and any(isinstance(v, bool) for v in value):
            wanted = " or ".join(dict.fromkeys("numbers" if kind in (int, float) else "names" for kind in items))
            message = "expected a list of {wanted}, not true or false"
            raise PydanticCustomError("not_a_switch", message, {"wanted": wanted})
        if isinstance(value, bool) and bool not in kinds and kinds:
            wanted = " or ".join(dict.fromkeys("a number" if kind in (int, float) else "a name" for kind in kinds))
            raise PydanticCustomError("not_a_switch", "expected {wanted}, not true or false", {"wanted": wanted})
        if value is not None and not isinstance(value, bool) and kinds == {bool}:
            raise PydanticCustomError("a_switch", "expected true or false")
        return value


def _item_kinds(annotation: Any) -> set[Any]:
    """The plain types a list or tuple setting's items take (`list[int] | None` -> {int}); empty for other settings."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    kinds: set[Any] = set()
    for arg in args:
        if get_origin(arg) in (list, tuple):
            for item in get_args(arg):
                kinds |= _kinds(item)
    return kinds


def _kinds(annotation: Any) -> set[Any]:
    """The plain types an annotation accepts besides None (`int | None` -> {int}); empty where it takes anything
    or a structure (a section, a list), which validates its own values."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    kinds = set()
    for arg in args:
        if get_origin(arg) is Annotated:
            arg = get_args(arg)[0]
        if arg is type(None):
            continue
        if get_origin(arg) is Literal:
            kinds.add(str)
        elif arg in (bool, int, float, str):
            kinds.add(arg)
        else:
            return set()
    return kinds


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: what a scheduler such as SLURM gave the job)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class DataConfig(Section):
    path: str | None = None
    """A folder of images (searched recursively), a .txt file list (`path [label]` per line) or a CSV with a
    header (`path` or `path,label`)."""
    image_size: int = Field(224, ge=8, le=4096)
    """Side of the square crops the model sees, in pixels."""
    num_workers: int = Field(default_factory=lambda: available_cores(), ge=0)
    """Loader processes that decode and augment images; default: one a core this process may use (its CPU
    affinity: a scheduler's allotment, not the machine's count). Does not change what a run computes, so a
    `--resume` may use another."""
    stats_sample: int = Field(5000, ge=1)
    """How many images the dataset's own pixel mean/std is computed from (once; then cached)."""
    max_bad_fraction: float = Field(0.05, ge=0.0, le=1.0)
    """Unusable files (empty, truncated, not images, unreadable, too large) are skipped and listed in
    `skipped.jsonl`; more than this share of them stops the run before it starts."""
    max_image_pixels: int = Field(89_478_485, ge=1)
    """Images whose header claims more pixels are skipped unread (decompression bombs); PIL's default
    (Image.MAX_IMAGE_PIXELS, 0.25 GB of RGB)."""
    intensity: Literal["auto", "full-range", "per-image"] | tuple[float, float] = "auto"
    """How 12/16-bit, float and DICOM values map to 0-255 (data/intensity.py): `auto` (the 0.5-99.5th
    percentiles of a sample of the dataset, one window for every image), `full-range` (the type's range),
    `per-image` (each image's min-max), or `[low, high]` in the images' own values (`--intensity LOW,HIGH`)."""

    nan_fill: float | None = None
    """What NaN and infinite pixel values (no-data in float tiles) become before the intensity window, in the
    images' own values; None: the window's low end. The window itself is measured on finite values only."""

    channels: Literal["auto"] | Annotated[int, Field(ge=1, le=64)] = "auto"
    """Bands per image (data/bands.py): 3 reads every image as RGB; another number reads multi-band TIFFs and
    .npy arrays as they are (the first convolution adapted). `auto`: the count most files have; files with
    another count are skipped and listed."""

    bands: list[Annotated[int, Field(ge=1, le=64)]] | None = None
    """Which bands of each file the model sees, in this order, numbered from 1 as GDAL and rasterio number them
    (data/bands.py): `[5, 3, 2]` is WorldView-2's red, green and blue, `[7, 5, 3]` a false-colour infrared. Three
    bands make an RGB image (colour views); files with fewer bands than the highest named are skipped and
    listed. None: every band, in the file's order."""

    shuffle_buffer: int = Field(256, ge=1)
    """Tar shards (data/shards.py): samples each loader process shuffles among, as WebDataset's shuffle buffer does
    (more mixes the shards more, and holds as many samples' bytes in memory)."""

    mixed_modalities: Literal["refuse", "allow"] = "refuse"
    """DICOM files of several modalities (CT with MR, say) that use the dataset window: under `data.intensity
    auto` each modality gets a window of its own; a window given as `[low, high]` is in one modality's units, so
    such a mix is refused with counts unless this is `allow` (one window for all of them)."""

    preview_bands: list[Annotated[int, Field(ge=1, le=64)]] | None = None
    """The three bands `views.png` shows as red, green and blue for multi-band data, numbered as `data.bands`
    (of the file; with `data.bands`, three of those). None: the first three the model sees (one band: grey)."""

    @field_validator("intensity", mode="before")
    @classmethod
    def _intensity(cls, value: Any) -> Any:
        return intensity_setting(value)

    @field_validator("bands", "preview_bands", mode="before")
    @classmethod
    def _band_list(cls, value: Any) -> Any:
        """The flag's '7,5,3,2' as a list; any other value as it is."""
        if isinstance(value, str) and value.strip():
            try:
                return [int(part) for part in value.split(",")]
            except ValueError:
                raise ValueError(f"expected band numbers from 1, e.g. 5,3,2; got {value!r}") from None
        return value

    @model_validator(mode="after")
    def _bands(self) -> DataConfig:
        if self.bands is not None:
            if not self.bands or len(set(self.bands)) != len(self.bands):
                raise ValueError(f"data.bands {self.bands}: expected distinct band numbers (from 1)")
            if self.channels not in ("auto", len(self.bands)):
                raise ValueError(
                    f"data.channels {self.channels} with data.bands {self.bands}: the model sees the "
                    f"{len(self.bands)} bands named; leave data.channels auto"
                )
        if self.preview_bands is not None:
            if len(self.preview_bands) != 3:
                raise ValueError(f"data.preview_bands {self.preview_bands}: expected three bands (red, green, blue)")
            if self.bands is not None and not set(self.preview_bands) <= set(self.bands):
                raise ValueError(f"data.preview_bands {self.preview_bands}: expected three of data.bands {self.bands}")
        return self


def intensity_setting(value: Any) -> Any:
    """`data.intensity` (and `hpt eval --intensity`): a mode name, [low, high], or the flag's 'LOW,HIGH'."""
    if value in ("auto", "full-range", "per-image"):
        return value
    if isinstance(value, str) and "," in value:  # the flag: --intensity LOW,HIGH
        try:
            value = [float(part) for part in value.split(",")]
        except ValueError:
            pass
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError("expected auto, full-range, per-image or a window [low, high] of two numbers")
    if not all(math.isfinite(v) for v in value):
        raise ValueError(f"a window [low, high] needs two finite numbers, got [{value[0]:g}, {value[1]:g}]")
    if not value[0] < value[1]:
        raise ValueError(f"a window [low, high] needs low < high, got [{value[0]:g}, {value[1]:g}]")
    return (float(value[0]), float(value[1]))


class ViewConfig(Section):
    """MoCo v2's augmentation (data/views.py) and the named policies of HPT's robustness study."""

    policy: ViewPolicy = "full"
    """Which augmentations the views use: MoCo v2's `full` set, or one with a part left out (HPT's robustness
    study); `rotation` adds random 90-degree rotations and vertical flips (aerial, pathology, microscopy: images
    without an "up"); `scan` jitters brightness and contrast only (no hue, saturation or grayscale: greyscale
    scans such as X-rays); `scan-rotation` is both."""
    crop_min_scale: float = Field(0.2, gt=0.0, le=1.0)
    """Smallest share of the image a random resized crop covers."""
    on_device: bool = False
    """Loader workers only decode and crop (uint8); colour, grayscale, blur, flip and normalisation run on the
    training device in batches (`data/device_views.py`): for a GPU that CPU augmentation cannot keep busy."""


class ModelConfig(Section):
    backbone: str | None = None
    """Registry name, e.g. `torchvision:resnet50`, `timm:tf_efficientnet_lite0`. None: taken from the base
    (its hub name or its hpt provenance), else `torchvision:resnet50`."""
    base: str | None = None
    """Where the starting weights live: a hub name (`timm:NAME`, `torchvision:NAME`), a local checkpoint
    (.safetensors, .pth/.pt) or an hpt run folder. None: no base."""
    init: Init | None = None
    """`full` (HPT: copy the backbone, new head), `bn-only` (HPT-BN: copy it, train only BatchNorm affine
    parameters and the head), `norm-only` (the same for every normalisation layer: LayerNorm and GroupNorm
    networks such as ViTs and ConvNeXts), `partial` (copy it, train only its last `trainable_blocks` blocks and
    what follows them; the rest is frozen and builds no graph), `lora` (copy it, freeze it, train LoRA adapters on
    its layers, its normalisation layers and any `trainable_blocks`; exported merged) or `scratch`. None: `full`
    when a base is given."""
    trainable_blocks: int | None = Field(None, ge=1)
    """With `init: partial` or `lora`, the blocks that train in full, counted from the end (timm's own grouping: an
    EfficientNet's stages, a ResNet's layers, a ViT's blocks; the final layers train with the last). None: 1 for
    `partial`, none for `lora`."""
    lora_rank: int | None = Field(None, ge=1)
    """With `init: lora`, the adapters' rank. None: 8."""
    lora_alpha: float | None = Field(None, gt=0.0)
    """With `init: lora`, the adapters' alpha: their update is scaled by alpha / rank. None: the rank (scale 1)."""
    lora_targets: list[str] | None = None
    """With `init: lora`, the modules that get adapters: regular expressions matched against whole module names
    (`blocks.*attn.qkv`: a ViT's attention inputs). None: every linear and ungrouped convolution after the stem and
    outside the unfrozen blocks."""

    @model_validator(mode="after")
    def _settings_of_the_init(self) -> ModelConfig:
        uses = {"trainable_blocks": ("partial", "lora"), "lora_rank": ("lora",), "lora_alpha": ("lora",),
                "lora_targets": ("lora",)}  # fmt: skip
        for key, inits in uses.items():
            if getattr(self, key) is not None and self.init not in inits:
                raise HptError(
                    f"model.{key} is for --init {' or '.join(inits)}; the init is {self.init or 'the default'}"
                )
        return self


class TransferConfig(Section):
    """Changes made to the copied backbone before training (after Ciga, Xu & Martel, 2021)."""

    weight_scaling: float | None = Field(None, gt=0.0)
    """FACTOR: rescale every conv/linear weight to FACTOR x the std of its fresh initialisation."""
    filter_selection: float | None = Field(None, gt=0.0, lt=1.0)
    """FRACTION: per conv layer, re-initialise this share of the filters least used on the target."""
    reestimate_batch_norm: bool = True
    """`bn-only` with BN statistics training (`freeze_bn_statistics: false`): recompute them on the target
    after training (HPT-BN). False keeps those the training batches left (a momentum average)."""
    estimate_batch_norm_first: bool = True
    """From scratch: estimate the BatchNorm running statistics on the target before step 0, so that the step-0
    evaluation (and a monitor's best checkpoint) is the network training starts from. False keeps the random
    initialisation's mean 0 / variance 1: close to the identity in evaluation mode, a network that can score
    far above what training starts from (benchmarks/results/moco_scratch)."""
    target_sample: int = Field(256, ge=1)
    """How many target images filter selection measures responses on, and `bn-only` re-estimates BN statistics
    on (from scratch: estimates them on before step 0)."""
    freeze_bn_statistics: bool | None = None
    """Keep the base's BatchNorm running statistics: the backbone's BN layers normalise with them during
    training too (transfer/frozen_statistics.py); their affine parameters still train. None: frozen whenever
    the run starts from a base (benchmarks/results/continue_from_base.md); false: HPT's behaviour."""


class MethodSection(Section):
    """The settings of one self-supervised method: `PretrainConfig` has one of these per method, under the
    method's name, and the method's file reads it."""

    lr: float = Field(gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set; each method
    gives its own measured default."""
    adamw_lr: float | None = Field(None, gt=0.0)
    """The learning rate per 256 images with `optim.name: adamw` unless `optim.lr` is set; None: not measured for
    this method, or no rate measured left the base better without worsening kNN, so such a run needs `optim.lr`."""
    lars_lr: float | None = Field(None, gt=0.0)
    """The learning rate per 256 images with `optim.name: lars`, as `adamw_lr` (None for BYOL, which collapsed at
    every rate measured, and SwAV, under the base at every one: benchmarks/results/method_lr_lars_wide,
    method_lr_lars_swav)."""
    clip_grad: float | None = Field(None, gt=0.0)
    """The method's own gradient clip (total norm) unless `optim.clip_grad` is set; None: not clipped."""

    RATE_KEYS: ClassVar[tuple[str, ...]] = ("lr", "adamw_lr", "lars_lr")
    """The method's own learning rates, one an optimiser."""

    @staticmethod
    def rate_key(optimiser: str) -> str:
        """The key of a method's own learning rate for `optimiser`: `lr` for SGD, `adamw_lr`, `lars_lr`."""
        return "lr" if optimiser == "sgd" else f"{optimiser}_lr"

    def rate_for(self, optimiser: str) -> tuple[str, float | None]:
        """The key of this method's own learning rate for `optimiser` and its value."""
        key = self.rate_key(optimiser)
        return key, getattr(self, key)


class MoCoV2Config(MethodSection):
    """MoCo v2 as in the HPT code (Reed et al., WACV 2022): queue 65536, dim 128, momentum 0.999, temperature 0.2."""

    queue_size: int = Field(65536, ge=1)
    """Negative keys kept from past batches."""
    dim: int = Field(128, ge=1)
    """Width of the embedding the loss compares."""
    hidden_dim: int | None = Field(None, ge=1)
    """Hidden width of the 2-layer MLP head; None: the backbone's feature width (2048 on ResNet-50)."""
    momentum: float = Field(0.999, ge=0.0, le=1.0)
    """EMA momentum of the key encoder."""
    temperature: float = Field(0.2, gt=0.0)
    """Softmax temperature of the InfoNCE loss."""
    lr: float = Field(0.03, gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set: MoCo's own 0.03. Of
    0.01 / 0.03 / 0.1 / 0.3 continuing from the ImageNet Lite0 on both benchmark targets (3 seeds, 400 validation
    images a target), 0.1 was the best on validation by 1.1 points, under one standard error (1.2), so 0.03 stays
    (+5.8 linear points over the base on test in 100 steps, 0.1 +8.8; 0.3 fell; benchmarks/results/method_lr_mocov2)."""
    adamw_lr: float | None = Field(0.0025, gt=0.0)
    """With `optim.name: adamw`: the best on validation of 0.0001 / 0.0005 / 0.0025 / 0.0125 continuing from the
    ImageNet Lite0 (tied with 0.0005 there, ahead by kNN; +11.6 linear points over the base on test in 100 steps,
    one seed per target; 0.0125 collapsed; benchmarks/results/method_lr_adamw)."""
    bn_splits: int | None = Field(None, ge=1)
    """On one process, the slices that emulate MoCo's shuffling BN (its single-GPU demo's SplitBatchNorm): the
    query encoder encodes the batch in this many slices, the key encoder a shuffled batch in as many, so a
    query and its key do not share BatchNorm statistics. Only while the backbone's BatchNorm layers learn
    their statistics (from scratch; a base's are frozen by default). None: one slice per 64 images, at least
    2; 1: off (the key encoder sees the query encoder's batch)."""
    first_negatives: Literal["none", "in-batch", "random"] = "none"
    """What a run's first step compares its queries with, while the queue holds no keys yet: `none` (that step's loss
    is 0 and trains nothing; from the second step the keys of the steps before), `in-batch` (the other keys of its
    batch, as SimCLR and MoCo v3 do), `random` (MoCo's own code: the queue starts full of random unit vectors,
    flushed as keys arrive). From the ImageNet Lite0 on three targets, 3 seeds each, 50 steps at batch 64 with a
    4096 queue (benchmarks/results/moco_first_step): `random` ended 5.1 linear and 6.0 kNN points under `none`
    (SE 2.7, 2.3); `in-batch` +0.3 and -0.3 (SE 1.1, 0.8), no difference, and 2.3 linear points under it at step
    10 (SE 1.0). `none` stays."""


class SimCLRConfig(MethodSection):
    """SimCLR (Chen et al., 2020): 2-layer MLP head with BN, NT-Xent; temperature 0.1 suits small batches."""

    dim: int = Field(128, ge=1)
    """Width of the embedding the loss compares."""
    hidden_dim: int | None = Field(None, ge=1)
    """Hidden width of the MLP head; None: the backbone's feature width (2048 on ResNet-50, as in the paper)."""
    temperature: float = Field(0.1, gt=0.0)
    """Softmax temperature of the NT-Xent loss."""
    lr: float = Field(0.01, gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set: the best on validation of
    0.003 / 0.01 / 0.03 continuing from the ImageNet Lite0 (0.003 within one standard error of it; at 0.03 kNN
    accuracy fell to 41-48%; benchmarks/results/method_lr)."""
    adamw_lr: float | None = Field(0.0025, gt=0.0)
    """With `optim.name: adamw`: the best on validation of 0.0001 / 0.0005 / 0.0025 / 0.0125 continuing from the
    ImageNet Lite0 (+17.8 linear points over the base on test, +16.4 at 0.0005, within one standard error of it on
    validation; one seed per target; 0.0125 collapsed; benchmarks/results/method_lr_adamw)."""
    lars_lr: float | None = Field(0.3, gt=0.0)
    """With `optim.name: lars`: SimCLR's own 0.3 per 256. Of 0.03 / 0.1 / 0.3 continuing from the Lite0 it was the
    best on validation (+16.1 linear points on test; benchmarks/results/method_lr_lars); widened to 1.0 / 3.0, 1.0
    led it there by 1.5 points, within one standard error (4.1), and 3.0 fell
    (benchmarks/results/method_lr_lars_wide)."""


class BYOLConfig(MethodSection):
    """BYOL (Grill et al., 2020): projector and predictor 4096-256 with BN; EMA 0.996 -> 1 (cosine)."""

    dim: int = Field(256, ge=1)
    """Width of the projection the predictor regresses."""
    hidden_dim: int = Field(4096, ge=1)
    """Hidden width of the projector and the predictor."""
    momentum_start: float = Field(0.996, ge=0.0, le=1.0)
    """EMA momentum of the target network at step 0; it rises to `momentum_end` on a cosine."""
    momentum_end: float = Field(1.0, ge=0.0, le=1.0)
    """EMA momentum at the last step."""
    lr: float = Field(0.3, gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set: the best on validation
    of 0.003 / 0.01 / 0.03 / 0.1 / 0.3 / 1.0 continuing from the ImageNet Lite0, ahead of the others by over one
    standard error (+11.6 linear points over the base on test, +12.5 on validation, in 100 steps, one seed per
    target; 1.0 collapsed; benchmarks/results/method_lr_byol). The first grid stopped at 0.03, under the base, and
    that default left BYOL worse than where it started; BYOL's own LARS rate is 0.2."""
    adamw_lr: float | None = Field(0.0025, gt=0.0)
    """With `optim.name: adamw`: the best on validation of 0.0001 / 0.0005 / 0.0025 / 0.0125 continuing from the
    ImageNet Lite0, ahead of the others by over one standard error (+18.3 linear points over the base on test,
    +12.5 on validation, in 100 steps, one seed per target; 0.0125 fell to 28%;
    benchmarks/results/method_lr_adamw_byol_swav)."""
    lars_lr: float | None = Field(None, gt=0.0)
    """None: with `optim.name: lars` at 0.03 / 0.1 / 0.3 / 1.0 / 3.0 per 256 (BYOL's own is 0.2) BYOL collapsed from the
    Lite0 on both targets within 100 steps (chance accuracy but one run at 3.0; the collapse watch warned), so a LARS
    run needs `optim.lr` (benchmarks/results/method_lr_lars, method_lr_lars_wide): under LARS's trust ratio its new
    projector and predictor barely move, and the biases collapse the representation (docs/methods.md)."""


class SwAVConfig(MethodSection):
    """SwAV (Caron et al., 2020): 3000 prototypes, temperature 0.1, Sinkhorn 3 iterations at epsilon 0.05,
    multi-crop 2 x 224 (scale 0.14-1) + 6 x 96 (scale 0.05-0.14), prototypes frozen for the first epoch."""

    dim: int = Field(128, ge=1)
    """Width of the embedding the prototypes score."""
    hidden_dim: int = Field(2048, ge=1)
    """Hidden width of the projection head."""
    prototypes: int = Field(3000, ge=2)
    """Number of prototype vectors (clusters)."""
    temperature: float = Field(0.1, gt=0.0)
    """Softmax temperature of the swapped prediction."""
    epsilon: float = Field(0.05, gt=0.0)
    """Entropy regularisation of the Sinkhorn-Knopp assignment."""
    sinkhorn_iterations: int = Field(3, ge=1)
    """Sinkhorn-Knopp normalisation rounds per batch."""
    lr: float = Field(0.01, gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set: the best on
    validation of 0.003 / 0.01 / 0.03 continuing from the ImageNet Lite0 (0.003, hpt's default until 2026-12,
    within one standard error of it on linear accuracy, but its kNN accuracy there fell 6.5 points under the
    base's, over one SE); at 0.03 SwAV fell 8.5 points; on test it ended under the base at all three in 100 steps
    (benchmarks/results/method_lr)."""
    adamw_lr: float | None = Field(0.0005, gt=0.0)
    """With `optim.name: adamw`: of 0.0001 / 0.0005 / 0.0025 / 0.0125 continuing from the ImageNet Lite0, within
    one standard error of the best on validation (0.0025, by 3.5 points), whose kNN accuracy there fell 8 points
    under the base's, over one SE (9 on test); at 0.0005 it rose 2 (on test +3.9 linear points over the base, kNN
    63.6% against the base's 63.4%; 0.0025 +5.2, kNN 54.5%; one seed per target; 0.0125 collapsed;
    benchmarks/results/method_lr_adamw_byol_swav)."""
    small_crops: int = Field(6, ge=0)
    """Small multi-crop views per image, besides the two large ones."""
    small_crop_ratio: float = Field(96 / 224, gt=0.0, le=1.0)
    """Small-crop size as a share of the image size (96 px at 224)."""
    crop_split: float = Field(0.14, gt=0.0, lt=1.0)
    """Large crops cover `crop_split`-1 of the image, small crops 0.05-`crop_split`."""
    freeze_prototypes_steps: int = Field(313, ge=0)
    """Steps during which the prototypes do not train (SwAV's first epoch)."""
    queue_size: int = Field(0, ge=0)
    """Embeddings of past large crops added to the Sinkhorn batch (0: off); for batches under 256."""
    queue_start_step: int = Field(0, ge=0)
    """Step from which the queue is used."""


class DINOConfig(MethodSection):
    """DINO (Caron et al., ICCV 2021): the teacher an EMA of the student (0.996 -> 1, cosine), head 2048-2048-256
    then 65536 weight-normalised outputs, centring (momentum 0.9), student temperature 0.1, teacher 0.04 warming
    to 0.07, the last layer frozen for the first epoch, multi-crop 2 global + 8 local, gradients clipped at 3."""

    out_dim: int = Field(65536, ge=2)
    """Outputs of the head's last layer (the dimensions the softmaxes are over): DINO's 65536."""
    hidden_dim: int = Field(2048, ge=1)
    """Hidden width of the head's 3-layer MLP."""
    bottleneck_dim: int = Field(256, ge=1)
    """Width of the L2-normalised embedding the last layer scores."""
    head_batch_norm: bool = False
    """BatchNorm after the head's hidden layers (DINO's `use_bn_in_head`, off in its recipes). From the Lite0 base
    at lr 0.03 it ended at 65.2% linear against 67.9% without (100 steps, one seed per target, a difference
    within the targets' spread; benchmarks/results/method_lr_dino_bn)."""
    momentum_start: float = Field(0.996, ge=0.0, le=1.0)
    """EMA momentum of the teacher at step 0; it rises to `momentum_end` on a cosine."""
    momentum_end: float = Field(1.0, ge=0.0, le=1.0)
    """EMA momentum at the last step."""
    student_temperature: float = Field(0.1, gt=0.0)
    """Softmax temperature of the student's outputs."""
    teacher_temperature_start: float = Field(0.04, gt=0.0)
    """Softmax temperature of the teacher's outputs at step 0 (sharper than the student's)."""
    teacher_temperature: float = Field(0.07, gt=0.0)
    """The teacher's temperature after the warm-up (DINO's ViT recipe; its released ResNet-50 kept 0.04)."""
    teacher_temperature_warmup: float = Field(0.3, ge=0.0, le=1.0)
    """Share of `train.steps` over which the teacher's temperature rises linearly: DINO's recipes take their first
    30 epochs, which is this share of its default 100."""
    centre_momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """Momentum of the running mean subtracted from the teacher's outputs."""
    freeze_last_layer_steps: int = Field(313, ge=0)
    """Steps during which the head's last layer does not train (DINO's first epoch; 313 steps is an ImageNet
    epoch at batch 4096, as for SwAV)."""
    small_crops: int = Field(8, ge=0)
    """Local (small) crops per image besides the two global ones; the teacher sees only the global ones."""
    small_crop_ratio: float = Field(96 / 224, gt=0.0, le=1.0)
    """Local-crop size as a share of the image size (96 px at 224)."""
    crop_split: float = Field(0.14, gt=0.0, lt=1.0)
    """Global crops cover `crop_split`-1 of the image, local crops 0.05-`crop_split` (DINO's ResNet-50 recipe;
    its ViTs use 0.4)."""
    lr: float = Field(0.3, gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set: ten times DINO's
    ResNet-50 SGD rate (0.03, hpt's default until 2026-12). Continuing from the ImageNet Lite0 for 100 steps, 0.3
    was the best on validation of 0.03 / 0.3 / 1.0 on 400 validation images a target (79.5% linear, 0.03 5.9
    points behind, over two standard errors; 1.0 within one; +7.1 linear points over the base on test against
    0.03's +5.3; kNN kept over the base's; benchmarks/results/method_lr_dino_sharp); the coarser studies (0.003 to
    0.3 on 100 images a target, benchmarks/results/method_lr_dino, method_lr_dino_wide) could not tell the rates
    apart. Three times longer (300 steps, Fashion-MNIST, one seed; benchmarks/results/method_lr_dino_long) 0.3
    still led 0.03 on validation (77.2% against 73.2%, over one SE) and tied it on test (72.8% against 73.0%); runs
    of thousands of steps are not measured and may want less."""
    adamw_lr: float | None = Field(0.0005, gt=0.0)
    """With `optim.name: adamw`: DINO's own ViT rate. Of 0.0001 / 0.0005 / 0.0025 / 0.0125 continuing from the
    ImageNet Lite0, 0.0025 was the best on validation (by 4.0 linear points over 0.0005, within one standard error,
    4.8), but its kNN accuracy there fell 10 points under the base's (over one SE; on test 56.7% against the base's
    63.4%), so it is no default; 0.0001 and 0.0005 keep kNN and cannot be told apart (0.0001 first on validation by
    1.5), and 0.0005 is DINO's (on test +3.9 linear points over the base, kNN 67.1%; 0.0001 +0.9; one seed per
    target; 0.0125 collapsed; benchmarks/results/method_lr_adamw_dino_distill)."""
    clip_grad: float | None = Field(3.0, gt=0.0)
    """The gradients' total norm is clipped to this unless `optim.clip_grad` is set (DINO's 3); None: off."""


NO_TEACHER = (  # `method: distill` without `distill.teacher`, where it is checked (precheck, the method)
    "method distill needs a teacher: pass --teacher MODEL (a hub name, a checkpoint file or an hpt run folder), "
    "or set distill.teacher"
)


class DistillConfig(MethodSection):
    """Distillation of a frozen teacher into the base (SEED, Fang et al., ICLR 2021, or cosine regression): the
    student (the base and a projection MLP onto the teacher's features) learns the teacher's embedding of each
    view."""

    teacher: str | None = None
    """The frozen model distilled from (`--teacher`): a hub name (`timm:NAME`, `torchvision:NAME`), a checkpoint
    file or an hpt run folder, as `model.base` takes them; `method: distill` needs one."""
    teacher_backbone: str | None = None
    """The teacher's architecture where its file does not say (a foreign checkpoint that hpt cannot identify from
    its keys), e.g. `timm:tf_efficientnet_lite2`; hub names and hpt files name their own."""
    teacher_image_size: int | None = Field(None, ge=8, le=4096)
    """The side the teacher sees each view at (the student's view resized); None: the size an hpt teacher was
    pretrained at, else the one size the teacher takes, else `data.image_size`."""
    loss: Literal["seed", "cosine"] = "seed"
    """`seed`: the student's similarities to the current teacher embedding and a queue of past ones match the
    teacher's own (cross-entropy of the two softmaxes, SEED's loss); `cosine`: 2 - 2 cos(student, teacher)."""
    queue_size: int = Field(16384, ge=1)
    """Past teacher embeddings the `seed` loss compares with. SEED's 65536 holds 128-d projections; hpt's teacher
    embeddings are pooled features (1280-d for an EfficientNet, 2048-d for a ResNet-50), where 65536 would be
    335-537 MB in every checkpoint: 16384 by default, not measured against SEED's."""
    student_temperature: float = Field(0.2, gt=0.0)
    """Softmax temperature of the student's similarities (`seed`; SEED's 0.2)."""
    teacher_temperature: float = Field(1e-4, gt=0.0)
    """Softmax temperature of the teacher's similarities (`seed`; SEED's code default 1e-4: nearly one-hot)."""
    hidden_dim: int | None = Field(None, ge=1)
    """Hidden width of the student's 2-layer projection MLP; None: the backbone's feature width (as SEED's)."""
    lr: float = Field(0.03, gt=0.0)
    """Learning rate per 256 images (scaled linearly with the batch) unless `optim.lr` is set: SEED's SGD rate. Of
    0.01 / 0.03 / 0.1 from the ImageNet Lite0 with the Lite2 teaching, 0.1 led 0.03 by 0.5 linear points on
    validation (standard error 4.7) and 1.1 on test, one seed per target: within noise, so SEED's rate stays
    (benchmarks/results/method_lr_distill). Widened to 0.3 / 1.0, 0.3 led 0.03 by 3.5 points on validation, within
    one standard error (4.6), and 1.0 fell 13 points under the base (benchmarks/results/method_lr_distill_wide)."""
    adamw_lr: float | None = Field(0.0005, gt=0.0)
    """With `optim.name: adamw`: the best on validation of 0.0001 / 0.0005 / 0.0025 / 0.0125 from the ImageNet Lite0
    with the Lite2 teaching (as `lr`'s study), 0.0025 within one standard error of it (+10.3 linear points over the
    base on test, +9.9 at 0.0025, +7.3 at 0.0001; one seed per target; 0.0125 collapsed;
    benchmarks/results/method_lr_adamw_dino_distill)."""


class OptimConfig(Section):
    name: Optimiser = "sgd"
    """`sgd` (with momentum: what every method's learning rate was measured with), `adamw` (Adam with decoupled
    weight decay, betas 0.9/0.999: what ViTs and ConvNeXts train with) or `lars` (momentum SGD with a per-tensor
    trust ratio, as SimCLR and BYOL train at large batches; biases and normalisation weights are neither
    adapted nor decayed: `hpt/core/lars.py`). Each method has its own learning rate for each optimiser where one
    was measured (`METHOD.lr` for sgd, `METHOD.adamw_lr`, `METHOD.lars_lr`); elsewhere `optim.lr` is needed."""
    lr: float | None = Field(None, gt=0.0)
    """Learning rate for a batch of 256; the run uses lr * batch_size / 256 (linear scaling). None: the
    method's own for the optimiser (`mocov2.lr`, `mocov2.adamw_lr`, ...), measured continuing from a base."""
    weight_decay: float = Field(1e-4, ge=0.0)
    """Weight decay (L2 for `sgd` and `lars`, decoupled for `adamw`), not applied to normalisation weights and
    biases: 1e-4, MoCo v2's and DINO's ResNet-50 recipe (SGD), what every method's learning rate was measured at.
    One value for all methods, not measured per method: with SGD its pull on the weights over a run is about
    lr x weight_decay x steps / (1 - momentum) of their norm, ~4e-4 over the studies' 100 steps (too small to
    show) but ~0.6 over 100 epochs of 100k images at batch 256, where it needs a study of its own (docs/methods.md)."""
    weight_decay_end: float | None = Field(None, ge=0.0)
    """Where set, the weight decay moves on a cosine from `weight_decay` at step 0 to this at the last step (DINO's
    ViT recipe: AdamW, 0.04 to 0.4); None: constant."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """Momentum of `sgd` and `lars` (`adamw` keeps its beta1 of 0.9)."""
    warmup_steps: int = Field(0, ge=0)
    """Steps of linear learning-rate warm-up before the cosine decay."""
    clip_grad: float | None = Field(None, gt=0.0)
    """Before each step, the gradients' total norm (over every trained tensor, after the processes' all-reduce)
    clipped to this; None: the method's own (`METHOD.clip_grad`: `dino.clip_grad` 3, the others none)."""


class TrainConfig(Section):
    steps: int = Field(5000, ge=1)
    """Optimisation steps of the run (learning rate, EMA and data order are functions of the step)."""
    batch_size: int = Field(256, ge=2)
    """The global batch: split evenly across processes, so a recipe means the same on 1 device or 64."""
    seed: int = 0
    """Seeds initialisation, data order and every view's random draws."""
    accumulate: int = Field(1, ge=1)
    """Micro-batches each step's batch is split into (per process), each through forward and backward on its own and
    their gradients summed before one update: the memory of a micro-batch, the learning rate and data order of
    `batch_size`. What then sees only a micro-batch: BatchNorm's batch statistics, in-batch negatives (SimCLR),
    SwAV's Sinkhorn, MoCo's and SEED's queues (filled between micro-batches) and DINO's centre (updated after
    each)."""
    log_every: int = Field(10, ge=1)
    """Steps between lines of `metrics.jsonl`."""
    checkpoint_every: int = Field(500, ge=1)
    """Steps between checkpoints that a cut-off run resumes from (`--resume`, `hpt chain`)."""
    accelerator: str = "auto"
    """`cpu`, `gpu`/`cuda`, `mps` or `auto` (Lightning Fabric's names)."""
    devices: int = Field(1, ge=1)
    """Processes per node (one per GPU). Above 1, `hpt pretrain` starts the other processes itself, unless
    `torchrun` or SLURM's `srun` started them (docs/gpus.md)."""
    num_nodes: int = Field(1, ge=1)
    """Machines; `devices` processes on each."""
    strategy: Strategy = "auto"
    """`auto`: one process on one device, DDP across several; `ddp`: DDP even on one."""
    precision: Precision = "auto"
    """`auto`: `bf16-mixed` on a GPU that has bfloat16 (Ampere and later), else `32-true`; the run's
    config.yaml records the one chosen. `bf16-mixed` or `16-mixed` run the forward passes under autocast."""
    sync_batch_norm: bool | None = None
    """Across processes, BatchNorm statistics over the global batch. None: on for SimCLR, BYOL, SwAV and DINO
    (as their papers train); off for MoCo v2, which shuffles the key encoder's batch across processes instead."""
    channels_last: bool | None = None
    """Images and weights in channels-last memory layout; None: on with a GPU (faster convolutions there)."""
    compile: bool = False
    """`torch.compile` the backbone (in place: file layouts do not change)."""
    stop_signals: list[str] = Field(default_factory=lambda: ["SIGTERM", "SIGUSR1"])
    """Signals that stop a run cleanly after the current step, with a checkpoint (train/guard.py): what
    clusters send before pre-empting a job. SIGINT (Ctrl-C) stops at once."""
    collapse_threshold: float = Field(0.1, ge=0.0, le=1.0)
    """Warn when the embeddings' spread (`train/health.py`: 1 evenly spread, 0 collapsed) falls under this."""
    loggers: list[LoggerName] | None = None
    """Where every scalar of `metrics.jsonl` also goes, through Lightning Fabric's loggers: `tensorboard`
    (`RUN/tensorboard/`: `tensorboard --logdir RUN`; `pip install 'hpt[tensorboard]'`), `csv`
    (`RUN/csv/metrics.csv`), `mlflow`
    (`$MLFLOW_TRACKING_URI`, else `RUN/mlflow.db`; `pip install 'hpt[mlflow]'`), `wandb` (project
    `$WANDB_PROJECT` or `hpt`, files in `RUN/wandb/`; `pip install 'hpt[wandb]'`). A comma-separated list;
    `none` or empty: `metrics.jsonl` only. None: the best one installed, TensorBoard where its extra is, else
    CSV (said on the console; the run's config.yaml records the one chosen)."""
    view_grid: int = Field(8, ge=0, le=64)
    """Images drawn at the start, each beside two of its training views (`RUN/views.png`, and TensorBoard):
    whether the view policy suits the data, at a glance. 0: none."""

    @field_validator("loggers", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [] if value.strip() in ("", "none") else [part.strip() for part in value.split(",")]
        return value

    @field_validator("stop_signals")
    @classmethod
    def _catchable(cls, names: list[str]) -> list[str]:
        """Signals a process can catch, by name: SIGKILL and SIGSTOP cannot be, and would fail at the start."""
        for name in names:
            full = name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"
            if full not in signal.Signals.__members__:
                raise PydanticCustomError("signal", "'{name}' is not a signal (e.g. SIGTERM, SIGUSR1)", {"name": name})
            if full in ("SIGKILL", "SIGSTOP"):
                raise PydanticCustomError(
                    "signal", "no process can catch {name}; a stop signal is one a scheduler sends before it "
                    "kills (SIGTERM, SIGUSR1)", {"name": full},
                )  # fmt: skip
        return names


class MonitorConfig(Section):
    """How a run watches itself: at step 0 (the starting point), every `every` steps and at the end, logged to
    metrics.jsonl. kNN (or linear) accuracy when a labelled split is given, which then keeps the best
    evaluation's backbone in `best.safetensors` and exports it; RankMe and alpha-ReQ, label-free, always."""

    train: str | None = None
    """Labelled images for the kNN memory (sub-folder per class, or a labelled file list)."""
    test: str | None = None
    """Labelled images the monitor's reported score is computed on (the same classes as `train`); it never picks
    the best step, so its score of the pick is not biased upwards by the picking."""
    val: str | None = None
    """Labelled images the best step is picked on; None: a seeded, stratified fifth of `train` held out for it."""
    protocol: Literal["knn", "linear", "both"] = "knn"
    """How the labelled score is computed: kNN (k=20), or a linear probe (weight decay chosen on a fifth of
    `train`), or `both` (logged side by side; the linear probe picks the best); the same code as `hpt eval`."""
    every: int | None = Field(None, ge=0)
    """Steps between evaluations; None: ten per run; 0: only at the start and the end."""
    label_free_sample: int = Field(512, ge=0)
    """Images the label-free scores are computed on (0: none); held out of training (at most a tenth of the
    data) when `label_free_pick` is on."""
    export: Literal["best", "last"] = "best"
    """Which backbone `backbone.safetensors` holds when there is a score to pick by: the best evaluation's
    (step 0, the starting point, included), or the last step's."""
    pick: Literal["highest", "latest-tied"] = "highest"
    """How `export: best` picks: the first step with the highest validation score, or the latest step whose
    per-image validation outcomes are not worse than that step's beyond their noise (exact McNemar;
    `train/best.py`). Measured (`benchmarks/pick_noise.py`, 3 targets x 3 seeds, 50 labelled images a class):
    where training helps, latest-tied exported 1.5 points more (SE 0.8); where it hurts (BatchNorm statistics
    trained), 2.3 points less (SE 0.8), under the base beyond its noise in 2 of 9 runs against 0 of 9, since a
    few dozen validation images rarely show a step worse. So `highest` stays the default, as the safer."""
    label_free_criteria: bool = False
    """Also log the label-free criteria of `hpt.eval.label_free` (view retrieval, alignment, uniformity, cluster
    and neighbourhood agreement) on two fixed training views of the sample: two more feature passes per
    evaluation. Off by default: none picked checkpoints within a point of labels on the benchmark
    (benchmarks/results/label_free)."""
    label_free_pick: bool = False
    """Without labels, pick the best evaluation by view retrieval (the label-free criteria are then computed).
    Off by default: on the benchmark (24 runs) its pick was 2.5 ± 2.7 linear-probe points under the labels'
    pick, within a point in 12 runs: better than the last step's 3.5 ± 2.8 (7 runs) but short of the goal, so
    without labels the last step is exported and the run says it cannot tell whether it beat its start."""

    allow_overlap: bool = False
    """Score splits that share files by content (compared by size and sha256 before the run starts; refused
    otherwise): recorded in the run's config, and said in the monitor's description and its finish."""
    cache_mb: int = Field(1024, ge=0)
    """Memory for the labelled splits' evaluation views, decoded once and kept; splits larger than this are
    decoded again at each evaluation (by data.num_workers loader processes)."""

    def interval(self, steps: int) -> int:
        return max(1, steps // 10) if self.every is None else self.every


class AutoConfig(Section):
    """`hpt pretrain --auto` (train/auto.py): pilots of these recipes, the best by the monitor runs in full."""

    recipes: list[str] = Field(default_factory=lambda: ["bn-only", "full", "full-lr/10"])
    """Names from `hpt.train.auto.RECIPES`: `bn-only`, `full`, `full-lr/10` (full at a tenth of optim.lr)."""
    pilot_steps: int | None = Field(None, ge=1)
    """Steps per pilot; None: a tenth of train.steps, at least 10."""


class PretrainConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    views: ViewConfig = Field(default_factory=ViewConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    method: Method = "mocov2"
    """The self-supervised method; its settings are in the section of the same name."""
    mocov2: MoCoV2Config = Field(default_factory=MoCoV2Config)
    simclr: SimCLRConfig = Field(default_factory=SimCLRConfig)
    byol: BYOLConfig = Field(default_factory=BYOLConfig)
    swav: SwAVConfig = Field(default_factory=SwAVConfig)
    dino: DINOConfig = Field(default_factory=DINOConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    auto: AutoConfig = Field(default_factory=AutoConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def method_section(self) -> MethodSection:
        """The settings of the run's method: the section named as the method (`mocov2`, ...)."""
        section = getattr(self, self.method)
        assert isinstance(section, MethodSection)
        return section

    @model_validator(mode="after")
    def _learning_rate_known(self) -> PretrainConfig:
        key, rate = self.method_section.rate_for(self.optim.name)
        if self.optim.lr is None and rate is None:  # HptError, not ValueError: pydantic passes it on as it is
            raise HptError(
                f"optim.name {self.optim.name} needs a learning rate: none is measured for method {self.method} "
                f"({self.method}.{key} is unset); set optim.lr (--lr)"
            )
        return self

    @property
    def learning_rate(self) -> float:
        """Per 256 images: `optim.lr` where set, else the method's own for the optimiser (`mocov2.lr`, ...)."""
        if self.optim.lr is not None:
            return self.optim.lr
        rate = self.method_section.rate_for(self.optim.name)[1]
        assert rate is not None  # `_learning_rate_known`
        return rate

    @property
    def scaled_learning_rate(self) -> float:
        """The peak rate the run uses: `learning_rate` scaled linearly with the (global) batch."""
        return self.learning_rate * self.train.batch_size / 256

    @property
    def gradient_clip(self) -> float | None:
        """The total gradient norm the run clips to: `optim.clip_grad` where set, else the method's own."""
        return self.optim.clip_grad if self.optim.clip_grad is not None else self.method_section.clip_grad

    def learning_rate_rule(self) -> str:
        """Where the learning rate a run uses comes from, in words: the rate per 256 images and its scaling, and
        the optimiser, the gradient clip and the weight decay's schedule where they are not the defaults (SGD, none,
        constant)."""
        source = (
            "optim.lr"
            if self.optim.lr is not None
            else f"{self.method}.{self.method_section.rate_for(self.optim.name)[0]}"
        )
        rule = f"{source} {self.learning_rate:g} x batch {self.train.batch_size} / 256"
        if self.optim.name != "sgd":
            rule += f", {self.optim.name}"
        if self.gradient_clip is not None:
            rule += f", gradients clipped to norm {self.gradient_clip:g}"
        if self.optim.weight_decay_end is not None:
            rule += f", weight decay {self.optim.weight_decay:g} to {self.optim.weight_decay_end:g} on a cosine"
        return rule


def load_config(
    path: str | Path | PretrainConfig | None = None, overrides: dict[str, Any] | None = None
) -> PretrainConfig:
    """The typed config of a run: the defaults, then the YAML file at `path` (a small diff over them), then
    `overrides` (dotted keys, as `--set` takes them).

    Args:
        path: a YAML file, a `PretrainConfig` to start from, or None for the defaults alone.
        overrides: {"optim.lr": 0.01, ...}; a value of None sets None.

    Returns:
        A validated `PretrainConfig`; an unknown key, a wrong type or a value out of range raises `HptError`
        naming the key.

    Example::

        from hpt import load_config
        config = load_config(None, {"data.path": "images/", "model.base": "timm:resnet50", "train.steps": 500})
        assert config.method == "mocov2" and config.train.steps == 500
    """
    raw: dict[str, Any] = {}
    if isinstance(path, PretrainConfig):
        raw, path = path.to_dict(), None
    elif path is not None:
        raw = read_yaml_mapping(Path(path))
    # a run's own config.yaml holds every method's section as that run resolved them: a record, not a request
    in_file: dict[str, Any] = {} if all(method in raw for method in get_args(Method)) else copy.deepcopy(raw)
    given: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
        set_dotted(given, dotted, value)
    source = str(path) if path else "config"
    config = validate_config(raw, source)
    refuse_other_methods_settings(config, given, "config")  # flags and --set: not the file's doing
    refuse_other_methods_settings(config, in_file, source)
    return config


def for_method(settings: dict[str, Any], method: str) -> dict[str, Any]:
    """Dotted settings (`{"mocov2.queue_size": 64, ...}`) without those of methods other than `method`: one set of
    settings for runs of several methods, each given what its method reads (`load_config` refuses the rest)."""
    others = set(get_args(Method)) - {method}
    return {key: value for key, value in settings.items() if key.split(".", 1)[0] not in others}


def refuse_other_methods_settings(config: PretrainConfig, raw: dict[str, Any], source: str) -> None:
    """A setting of a method the run does not use (`--teacher` without `--method distill`, `dino.*` with
    mocov2) would be ignored: one line instead. A section at its defaults passes (a config.yaml hpt wrote holds
    every method's)."""
    for method in get_args(Method):
        if method == config.method or not isinstance(raw.get(method), dict):
            continue
        given, default = getattr(config, method).model_dump(), type(getattr(config, method))().model_dump()
        for key in raw[method]:
            if given.get(key) != default.get(key):
                raise HptError(
                    f"{source}: {method}.{key} is set ({given[key]!r}) but the method is {config.method}, which "
                    f"does not read it; choose --method {method}, or leave {method}.{key} out"
                )


PATH_KEYS = ("data.path", "model.base", "monitor.train", "monitor.val", "monitor.test", "distill.teacher")
"""Config keys that may name local files or folders (a base may also be a hub name)."""


def with_resolved_paths(raw: dict[str, Any]) -> dict[str, Any]:
    """A config tree (as `to_dict` gives it) whose local paths are absolute and resolved, so that the same
    folder named two ways is the same config; hub names and paths that do not exist stay as given."""
    tree = {section: dict(values) if isinstance(values, dict) else values for section, values in raw.items()}
    for dotted in PATH_KEYS:
        section, key = dotted.split(".")
        value = tree.get(section, {}).get(key) if isinstance(tree.get(section), dict) else None
        if isinstance(value, str) and value and Path(value).expanduser().exists():
            tree[section][key] = str(Path(value).expanduser().resolve())
    return tree


def resolve_paths(config: PretrainConfig) -> PretrainConfig:
    return PretrainConfig.model_validate(with_resolved_paths(config.to_dict()))


MAX_YAML_BYTES = 1 << 20
"""Config and chain files are a few hundred bytes; anything over a mebibyte is not one."""
MAX_YAML_NODES = 100_000
"""Values after aliases are expanded: a config has a few hundred; an alias bomb (`&a [*b, *b, ...]` nested)
has billions and would take minutes and gigabytes to build."""


def read_yaml_mapping(path: Path, what: str = "config file") -> dict[str, Any]:
    if not path.is_file():
        raise HptError(f"{what} '{path}' does not exist")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise HptError(f"{what} '{path}' is {path.stat().st_size} bytes; a config holds at most {MAX_YAML_BYTES}")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise HptError(f"{what} '{path}' is not a text file") from None
    raw = parse_yaml(text, f"{what} '{path}'") or {}
    if not isinstance(raw, dict):
        raise HptError(f"{what} '{path}' must hold a mapping of keys, not {type(raw).__name__}")
    return raw


def parse_yaml(text: str, what: str) -> Any:
    """Safe YAML (no Python objects), bounded: a document that expands to more than `MAX_YAML_NODES` values
    is refused before it is built. Errors are one line naming `what`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node) > MAX_YAML_NODES:
            raise HptError(
                f"{what} expands to more than {MAX_YAML_NODES} values (aliases repeat nodes); a config is a few hundred"
            )
        if node is not None and (repeated := _repeated_key(node)):
            raise HptError(
                f"{what} gives the key '{repeated.value}' twice (again at line {repeated.start_mark.line + 1})"
            )  # YAML keeps the last silently
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise HptError(f"{what} is not valid YAML{where}") from None
    except RecursionError:
        raise HptError(f"{what} nests too deeply to be a config") from None


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document holds with every alias expanded, counted up to just past the limit."""
    count, stack = 0, [root]
    while stack and count <= MAX_YAML_NODES:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return count


def _repeated_key(root: yaml.Node) -> yaml.Node | None:
    """The first key node that repeats a key of its mapping: YAML's last-wins would silently drop the first."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: its node was looked at already
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in keys:
                        return key
                    keys.add(key.value)
                stack.append(value)
    return None


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise HptError(f"config key '{dotted}': '{key}' is not a section")
        node = child
    node[leaf] = value


def validate_config(raw: dict[str, Any], source: str = "config") -> PretrainConfig:
    try:
        return PretrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise HptError(describe_validation_error(exc, source)) from None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """The first problem as one line that names the key and what it accepts (for a key that takes one of
    several kinds of value, e.g. `auto` or a number, what each kind wants)."""
    errors = exc.errors()
    err = errors[0]
    if err["type"] == "extra_forbidden":
        key = ".".join(str(p) for p in err["loc"])
        section = _section_at(err["loc"][:-1])
        known = ", ".join(section.model_fields) if section else ""
        return f"{source}: unknown key '{key}' (known here: {known})"
    path = _field_path(err["loc"])
    reasons = dict.fromkeys(_reason(e) for e in errors if _field_path(e["loc"]) == path)
    return f"{source}: '{'.'.join(path)}' got {err['input']!r}; {', or '.join(reasons)}"


def _reason(err: Any) -> str:
    if err["type"] == "literal_error":
        return f"expected {err['ctx']['expected']}"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}"


def _field_path(loc: tuple) -> list[str]:
    """The config key an error is about: `loc` without pydantic's union-branch tags (`literal[...]`, `int`)."""
    path: list[str] = []
    model: type[Section] | None = PretrainConfig
    for part in loc:
        if model is None or str(part) not in model.model_fields:
            break
        path.append(str(part))
        annotation = model.model_fields[str(part)].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None
    return path or [str(p) for p in loc]


def _section_at(loc: tuple) -> type[Section] | None:
    model: type[Section] = PretrainConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            return None
        model = annotation
    return model


def dump_config(config: PretrainConfig, path: Path) -> None:
    from hpt.core.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
