"""Synthetic training data generated in-process, sample by sample, so that DataLoader workers do real
work (as decoding and augmentation do in real training). Each sample depends only on (seed, index):
runs are reproducible and workers need no shared state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from eaco.profiler.zoo import zoo_entry


MOVIELENS_20M_USERS = 138_493
MOVIELENS_20M_ITEMS = 26_744


@dataclass(frozen=True, slots=True)
class DataShape:
    """Sizes of the synthetic inputs (defaults: ImageNet-like images, WikiText-like tokens, ML-20M-like ids)."""

    image_size: int = 224
    num_classes: int = 1000
    seq_len: int = 128
    vocab_size: int = 32000
    num_users: int = MOVIELENS_20M_USERS
    num_items: int = MOVIELENS_20M_ITEMS

    def __post_init__(self) -> None:
        for name in ("image_size", "num_classes", "seq_len", "vocab_size", "num_users", "num_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"DataShape.{name}: expected >= 1, got {getattr(self, name)}")


class _Seeded(Dataset):
    def __init__(self, length: int, seed: int) -> None:
        if length < 1:
            raise ValueError(f"dataset length: expected >= 1, got {length}")
        self.length = length
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def _gen(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + index)


class SyntheticImages(_Seeded):
    """3 x S x S float images (normal noise, then per-channel normalisation like ImageNet preprocessing)."""

    _MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    _STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def __init__(self, length: int, shape: DataShape, seed: int = 0) -> None:
        super().__init__(length, seed)
        self.shape = shape

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._gen(index)
        s = self.shape.image_size
        img = torch.rand(3, s, s, generator=g)
        img = (img - self._MEAN) / self._STD
        label = torch.randint(0, self.shape.num_classes, (), generator=g)
        return img, label


class SyntheticTokens(_Seeded):
    """Token sequences of ``seq_len + 1``; the model reads the first ``seq_len`` and predicts the next."""

    def __init__(self, length: int, shape: DataShape, seed: int = 0) -> None:
        super().__init__(length, seed)
        self.shape = shape

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        seq = torch.randint(0, self.shape.vocab_size, (self.shape.seq_len + 1,), generator=self._gen(index))
        return seq[:-1], seq[1:]


class SyntheticInteractions(_Seeded):
    """(user, item) pairs with a 0/1 label: one observed interaction for every 4 sampled negatives (NCF)."""

    def __init__(self, length: int, shape: DataShape, seed: int = 0) -> None:
        super().__init__(length, seed)
        self.shape = shape

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._gen(index)
        user = torch.randint(0, self.shape.num_users, (), generator=g)
        item = torch.randint(0, self.shape.num_items, (), generator=g)
        label = torch.tensor(1.0 if index % 5 == 0 else 0.0)
        return torch.stack([user, item]), label


def build_dataset(model: str, length: int, shape: DataShape, seed: int = 0) -> Dataset:
    kind = zoo_entry(model).kind
    if kind == "image":
        return SyntheticImages(length, shape, seed)
    if kind == "tokens":
        return SyntheticTokens(length, shape, seed)
    return SyntheticInteractions(length, shape, seed)
