"""Pretrained weights from a hub, on a machine that may have no network (a cluster node, an air-gapped box).

A hub name (`timm:NAME`, `torchvision:NAME`) downloads its weights once into a cache folder and reads them
from there afterwards. Without a network, a name that is not cached used to wait through the hub client's
retries (~55 s) before its error. Before anything is downloaded, `check_available` looks in the cache; weights
that are not there fail at once, with one line naming the cache folder:

- when the hub is told to stay offline (`HF_HUB_OFFLINE=1` for timm's Hugging Face hub);
- when the hub's host cannot be reached (one connection attempt, `PROBE_TIMEOUT_S`), unless a proxy is set
  (`HTTPS_PROXY`, `ALL_PROXY`): then the hub client, which uses the proxy, tries itself.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from hpt.errors import HptError

PROBE_TIMEOUT_S = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubWeights:
    name: str
    """The hub name, as the user gave it (`timm:resnet18`)."""
    cached: bool
    cache: Path
    """The folder the weights are downloaded into and read from."""
    host: str
    offline_variable: str | None = None
    """The environment variable that keeps this hub's client offline, if it has one."""


def check_available(weights: HubWeights) -> None:
    """Nothing when the weights are cached or can be fetched; else one line, at once."""
    if weights.cached:
        return
    where = f"'{weights.name}': its pretrained weights are not in the cache folder {weights.cache}"
    fetch_elsewhere = (
        "download them on a machine with a network (the same hub name, with the same cache folder) and copy "
        "the folder here, or give a local checkpoint with --base FILE"
    )
    variable = weights.offline_variable
    if variable and os.environ.get(variable, "").strip().lower() in TRUE:
        raise HptError(f"{where}, and {variable}=1 allows no download: {fetch_elsewhere}")
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return  # reachable through the proxy, perhaps: the hub client decides
    try:
        socket.create_connection((weights.host, 443), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        offline = f"; set {variable}=1 to use the cache alone without retries" if variable else ""
        raise HptError(
            f"{where}, and {weights.host} cannot be reached ({exc.strerror or exc}): {fetch_elsewhere}{offline}"
        ) from None


def torch_hub_weights(name: str, url: str) -> HubWeights:
    """Weights torch.hub downloads from `url` into its checkpoints folder (torchvision's, timm's older ones)."""
    import torch

    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    return HubWeights(name, file.is_file(), file.parent, urlparse(url).hostname or "")
