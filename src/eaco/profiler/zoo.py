"""The job zoo: the paper's four image classifiers plus a transformer LM, an LSTM LM and a recommender.

Plain PyTorch (no torchvision). Architectures follow the published definitions:

- ``alexnet``: Krizhevsky et al. 2012, in the single-tower form of torchvision/``examples/imagenet``
  (conv 64-192-384-256-256, adaptive 6x6 pool, FC 4096-4096).
- ``vgg16``: Simonyan & Zisserman 2015, configuration D (13 conv + 3 FC), no batch norm.
- ``resnet18`` / ``resnet50``: He et al. 2016 (basic blocks [2,2,2,2] / bottlenecks [3,4,6,3]).
- ``transformer_lm``: a GPT-style decoder-only language model (pre-norm, causal mask, learned
  positions): 6 layers, d_model 512, 8 heads, FFN 2048 at ``width_mult`` 1.
- ``lstm_lm``: the word-level LSTM language model of PyTorch ``examples/word_language_model``
  (2 layers, 650 hidden, tied embeddings), the model behind Gavel's "LM" job type.
- ``ncf``: Neural Collaborative Filtering (He et al. 2017, NeuMF: GMF + MLP towers), a
  recommendation model trained with binary cross-entropy on implicit feedback.

``width_mult`` scales every channel count / hidden size (1.0 = the published model); the tests use
small values so that a CPU can train them in seconds. Sizes of the synthetic inputs live in
:class:`eaco.profiler.data.DataShape`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

IMAGE_MODELS = ("alexnet", "resnet18", "resnet50", "vgg16")
TOKEN_MODELS = ("transformer_lm", "lstm_lm")
RECSYS_MODELS = ("ncf",)
MODEL_NAMES = IMAGE_MODELS + TOKEN_MODELS + RECSYS_MODELS


@dataclass(frozen=True, slots=True)
class ZooEntry:
    name: str
    kind: str  # "image" | "tokens" | "recsys": which synthetic data and loss it takes
    description: str
    base_lr: float  # learning rate of the reference recipe (SGD for images, Adam otherwise)
    min_image_size: int = 0  # smallest input side the architecture accepts (image models)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("alexnet", "image", "AlexNet (examples/imagenet variant)", 0.01, 35),
        ZooEntry("resnet18", "image", "ResNet-18", 0.1, 32),
        ZooEntry("resnet50", "image", "ResNet-50", 0.1, 32),
        ZooEntry("vgg16", "image", "VGG-16 (configuration D)", 0.01, 8),
        ZooEntry("transformer_lm", "tokens", "GPT-style transformer language model", 3e-4),
        ZooEntry("lstm_lm", "tokens", "2-layer LSTM word language model", 1e-3),
        ZooEntry("ncf", "recsys", "Neural Collaborative Filtering (NeuMF)", 1e-3),
    )
}


def zoo_entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; expected one of: {', '.join(MODEL_NAMES)}") from None


def _w(channels: int, width_mult: float) -> int:
    return max(1, int(round(channels * width_mult)))


# --- image classifiers ----------------------------------------------------------------------


class AlexNet(nn.Module):
    def __init__(self, num_classes: int, width_mult: float = 1.0) -> None:
        super().__init__()
        c = [_w(x, width_mult) for x in (64, 192, 384, 256, 256)]
        hidden = _w(4096, width_mult)
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(c[4] * 36, hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    def __init__(self, num_classes: int, width_mult: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                out = _w(int(v), width_mult)
                layers += [nn.Conv2d(in_ch, out, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = out
        hidden = _w(4096, width_mult)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(in_ch * 49, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=True)
        self.down = _downsample(in_ch, ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int) -> None:
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)  # stride on the 3x3 (ResNet v1.5)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.down = _downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...], num_classes: int,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        stem = _w(64, width_mult)
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        in_ch = stem
        for i, n_blocks in enumerate(layers):
            ch = _w(64 * 2**i, width_mult)
            blocks: list[nn.Module] = []
            for j in range(n_blocks):
                blocks.append(block(in_ch, ch, 2 if (j == 0 and i > 0) else 1))
                in_ch = ch * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


# --- sequence and recommendation models ----------------------------------------------------------


class TransformerLM(nn.Module):
    def __init__(self, vocab_size: int, seq_len: int, width_mult: float = 1.0, layers: int = 6) -> None:
        super().__init__()
        heads = 8
        d_model = max(heads, _w(512 // heads, width_mult) * heads)
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=4 * d_model, dropout=0.1, batch_first=True, norm_first=True,
            activation="gelu",
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as in GPT-2
        self.register_buffer("causal_mask", torch.triu(torch.full((seq_len, seq_len), -math.inf), 1), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        pos = torch.arange(n, device=tokens.device)
        h = self.tok(tokens) + self.pos(pos)[None]
        h = self.blocks(h, mask=self.causal_mask[:n, :n], is_causal=True)
        return self.head(self.norm(h))


class LstmLM(nn.Module):
    def __init__(self, vocab_size: int, width_mult: float = 1.0, layers: int = 2) -> None:
        super().__init__()
        hidden = _w(650, width_mult)
        self.embed = nn.Embedding(vocab_size, hidden)
        self.drop = nn.Dropout(0.5)
        self.lstm = nn.LSTM(hidden, hidden, layers, dropout=0.5, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)
        self.head.weight = self.embed.weight  # tied (examples/word_language_model --tied)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.drop(self.embed(tokens)))
        return self.head(self.drop(out))


class NeuMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, width_mult: float = 1.0) -> None:
        super().__init__()
        gmf_dim = _w(64, width_mult)
        mlp = [_w(x, width_mult) for x in (256, 128, 64)]
        self.gmf_user = nn.Embedding(num_users, gmf_dim)
        self.gmf_item = nn.Embedding(num_items, gmf_dim)
        self.mlp_user = nn.Embedding(num_users, mlp[0] // 2 or 1)
        self.mlp_item = nn.Embedding(num_items, mlp[0] // 2 or 1)
        in_dim = 2 * (mlp[0] // 2 or 1)
        tower: list[nn.Module] = []
        for out in mlp[1:]:
            tower += [nn.Linear(in_dim, out), nn.ReLU(inplace=True)]
            in_dim = out
        self.mlp = nn.Sequential(*tower)
        self.out = nn.Linear(gmf_dim + in_dim, 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=1))
        return self.out(torch.cat([gmf, mlp], dim=1)).squeeze(1)


def build_model(name: str, *, num_classes: int, vocab_size: int, seq_len: int, num_users: int, num_items: int,
                width_mult: float = 1.0) -> nn.Module:
    """Construct a zoo model by name (see the module docstring)."""
    zoo_entry(name)
    if not width_mult > 0:
        raise ValueError(f"width_mult: expected > 0, got {width_mult}")
    if name == "alexnet":
        return AlexNet(num_classes, width_mult)
    if name == "vgg16":
        return VGG16(num_classes, width_mult)
    if name == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, width_mult)
    if name == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, width_mult)
    if name == "transformer_lm":
        return TransformerLM(vocab_size, seq_len, width_mult)
    if name == "lstm_lm":
        return LstmLM(vocab_size, width_mult)
    return NeuMF(num_users, num_items, width_mult)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
