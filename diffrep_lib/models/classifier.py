"""The evaluation classifier: a small CNN on clean 28x28 images whose penultimate 128-d layer is the
feature space of FID-FM (ch. 1). Never used for guidance (ch. 3 trains a noise-aware one).
Module names: `features` (N, 1, 28, 28) -> (N, feat_dim), `head` -> (N, num_classes) logits.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    width: int = 32
    feat_dim: int = 128
    num_classes: int = 10


def _conv(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class Classifier(nn.Module):
    output_kind = "logits"      # not an image: the denoiser adapters refuse it

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.features = nn.Sequential(
            _conv(cfg.in_channels, w), _conv(w, w), nn.MaxPool2d(2),          # 28 -> 14
            _conv(w, 2 * w), _conv(2 * w, 2 * w), nn.MaxPool2d(2),            # 14 -> 7
            nn.Flatten(), nn.Linear(2 * w * 7 * 7, cfg.feat_dim), nn.ReLU())
        self.head = nn.Linear(cfg.feat_dim, cfg.num_classes)

    def forward(self, x, t=None, y=None):
        return self.head(self.features(x))
