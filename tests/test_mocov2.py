import copy

import pytest
import torch
import torch.nn.functional as F

from hpt.backbones import create_backbone
from hpt.config import MoCoV2Config
from hpt.core.ema import ema_update
from hpt.core.schedule import cosine_schedule
from hpt.data.stats import PixelStats
from hpt.methods import build_method
from hpt.methods.mocov2 import MoCoV2, default_splits
from hpt.methods.queue import KeyQueue


def test_queue_is_fifo_and_wraps_around():
    queue = KeyQueue(dim=2, size=5)
    first = torch.arange(6, dtype=torch.float32).reshape(3, 2)  # keys 0..2
    queue.push(first)
    assert queue.ptr.item() == 3
    assert torch.equal(queue.keys[:, :3], first.T)
    second = 10 + torch.arange(8, dtype=torch.float32).reshape(4, 2)  # keys 3..6: slots 3, 4, 0, 1
    queue.push(second)
    assert queue.ptr.item() == 2
    assert torch.equal(queue.keys[:, 3:5], second[:2].T)
    assert torch.equal(queue.keys[:, 0:2], second[2:].T)
    assert torch.equal(queue.keys[:, 2], first[2])  # the oldest surviving key is untouched


def test_queue_keeps_the_newest_keys_when_a_batch_is_larger_than_it():
    queue = KeyQueue(dim=1, size=3)
    queue.push(torch.arange(7, dtype=torch.float32).reshape(7, 1))
    assert sorted(queue.keys[0].tolist()) == [4.0, 5.0, 6.0]


def test_only_slots_that_hold_keys_are_negatives():
    """An empty queue offers no negatives (MoCo's random start vectors are not keys); then exactly the keys
    pushed, until it is full."""
    queue = KeyQueue(dim=2, size=5)
    assert queue.negatives().shape == (2, 0)
    keys = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    queue.push(keys)
    assert torch.equal(queue.negatives(), keys.T)
    queue.push(keys)
    assert queue.negatives().shape == (2, 5)


def test_a_queue_saved_before_it_counted_its_keys_loads_as_full():
    queue = KeyQueue(dim=2, size=5)
    state = {k: v for k, v in queue.state_dict().items() if k != "filled"}
    queue.load_state_dict(state)
    assert queue.negatives().shape == (2, 5)


def test_ema_update_follows_the_formula_exactly():
    torch.manual_seed(0)
    online = torch.nn.Linear(4, 3)
    target = copy.deepcopy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    expected = [0.99 * t + (1 - 0.99) * o for o, t in zip(online.parameters(), target.parameters())]
    ema_update([(online, target)], 0.99)
    for got, want in zip(target.parameters(), expected):
        assert torch.allclose(got, want, atol=0, rtol=1e-6)  # in-place lerp vs two products and a sum: <= 2 ulp


def test_mocov2_step_trains_the_query_encoder_only_and_enqueues_the_keys():
    torch.manual_seed(0)
    method = MoCoV2(create_backbone("torchvision:resnet18"), MoCoV2Config(queue_size=16, dim=8, hidden_dim=32))
    views = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    loss, embeddings = method(views)
    assert embeddings.shape == (4, 8) and not embeddings.requires_grad
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(p.grad is not None for p in method.backbone.parameters())
    assert all(p.grad is None and not p.requires_grad for p in method.momentum_backbone.parameters())
    assert method.queue.ptr.item() == 4
    with torch.no_grad():  # train-mode BN normalises with batch statistics, so the keys recompute exactly
        keys = F.normalize(method.momentum_head(method.momentum_backbone(views[1])), dim=1)
    assert torch.allclose(method.queue.keys[:, :4].T, keys, atol=1e-6)
    assert loss.item() == 0  # the first batch had no negatives yet: the queue was empty
    assert method(views).loss.item() > 0  # the next one has the first batch's keys


def test_mocov2_defaults_follow_hpt():
    config = MoCoV2Config()
    assert (config.queue_size, config.dim, config.momentum, config.temperature) == (65536, 128, 0.999, 0.2)
    method = MoCoV2(create_backbone("torchvision:resnet50"), config)
    widths = [m.out_features for m in method.head.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [2048, 128]  # MLP 2048-2048-128 on ResNet-50


def test_cosine_schedule_warmup_and_decay():
    values = cosine_schedule(1.0, 0.0, steps=10, warmup_steps=2)
    assert values[0] == 0.0 and values[1] == 0.5 and values[2] == 1.0
    assert all(a >= b for a, b in zip(values[2:], values[3:]))
    assert 0.0 < values[-1] < 0.1
    assert len(cosine_schedule(0.5, 0.5, steps=3)) == 3 and set(cosine_schedule(0.5, 0.5, 3)) == {0.5}


def test_one_process_emulates_shuffling_batch_norm_only_while_statistics_train(tiny_config, digits):
    """From scratch (BatchNorm learning its statistics) MoCo encodes a one-process batch in slices, the keys
    shuffled; once the statistics are frozen (a base's, by default) there is nothing to leak and no slicing."""
    from hpt.backbones import create_backbone as make
    from hpt.transfer.frozen_statistics import hold_batch_norm_statistics

    config = tiny_config(digits["pretrain"], method="mocov2")
    method = build_method("mocov2", make(config.model.backbone), config, PixelStats((0.5,) * 3, (0.5,) * 3)).train()
    assert method.splits is None  # mocov2.bn_splits unset: by the batch that comes
    assert method._splits(8) == 2 and method._splits(256) == 4
    hold_batch_norm_statistics(method)
    assert method._splits(256) == 1


def test_slices_hold_64_images_by_default_and_never_fewer_than_two():
    """A batch smaller than the configured one (4 images where 256 are configured, a test's or the last
    partial one) is never cut into slices of one image, on which BatchNorm cannot train."""
    assert [default_splits(n) for n in (8, 64, 128, 256, 512, 1000)] == [2, 2, 2, 4, 8, 15]
    method = MoCoV2(create_backbone("torchvision:resnet18"), MoCoV2Config(queue_size=16, dim=8), splits=8).train()
    assert [method._splits(n) for n in (2, 3, 4, 16, 64)] == [1, 1, 2, 8, 8]


def test_a_full_queue_stops_reading_its_count_and_a_loaded_one_reads_it_again():
    """Once full, `negatives` no longer reads `filled` to the host; loading a checkpoint (here a half-full
    queue into a full one) makes it read the count again, so the loaded queue offers only its keys."""
    half = KeyQueue(dim=2, size=4)
    half.push(torch.ones(2, 2))
    full = KeyQueue(dim=2, size=4)
    full.push(torch.zeros(4, 2))
    assert full.negatives().shape == (2, 4)
    full.load_state_dict(half.state_dict())
    assert torch.equal(full.negatives(), torch.ones(2, 2))


@pytest.mark.parametrize("first", ["none", "in-batch", "random"])
def test_what_the_first_step_compares_with(first):
    """`mocov2.first_negatives`: `none` leaves step 1 without a negative (loss 0, no gradient); `in-batch` compares
    each query with the batch's other keys (the loss computed here from its definition: cross-entropy of
    query . key / T over the batch, the positive on the diagonal); `random` starts the queue full of unit vectors.
    From the second step all three compare with the queue."""
    torch.manual_seed(0)
    config = MoCoV2Config(queue_size=16, dim=8, hidden_dim=32, first_negatives=first)
    method = MoCoV2(create_backbone("torchvision:resnet18"), config, shuffle_keys=False)
    assert method.queue.filled.item() == (16 if first == "random" else 0)
    if first == "random":
        assert torch.allclose(method.queue.keys.norm(dim=0), torch.ones(16), atol=1e-5)
    views = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    loss = method(views).loss
    loss.backward()
    grads = [p.grad for p in method.backbone.parameters() if p.grad is not None]
    if first == "none":
        assert loss.item() == 0 and all(g.abs().max() == 0 for g in grads)
        return
    assert loss.item() > 0 and any(g.abs().max() > 0 for g in grads)
    if first == "in-batch":
        method.zero_grad()
        with torch.no_grad():  # train-mode BatchNorm: the same batch gives the same embeddings again
            query = F.normalize(method.head(method.backbone(views[0])), dim=1)
            key = F.normalize(method.momentum_head(method.momentum_backbone(views[1])), dim=1)
        logits = torch.stack([torch.stack([q @ k / config.temperature for k in key]) for q in query])
        expected = -torch.log_softmax(logits, dim=1).diagonal().mean()
        assert abs(loss.item() - expected.item()) < 1e-5
    assert method.queue.filled.item() == (16 if first == "random" else 4)
