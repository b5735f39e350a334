"""FLOPs of attention, norms and activations on tiny models, against hand-computed counts (the
NB201/NB101 counts against the benchmark files are in test_spaces.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoproxy.flops import count_flops, module_flops

pytestmark = pytest.mark.usefixtures("one_torch_thread_per_module")
TOKENS, DIM, HEADS = 4, 8, 2
HEAD_DIM = DIM // HEADS


class Attention(nn.Module):
    """timm's ``Attention``: fused qkv Linear, then functional matmuls outside any counted module."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        q, k, v = self.qkv(x).reshape(batch, TOKENS, 3, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(batch, TOKENS, DIM))


class FusedAttention(nn.Module):
    """q = k = v = the tokens split into heads, through ``F.scaled_dot_product_attention``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = x.reshape(x.shape[0], TOKENS, HEADS, HEAD_DIM).transpose(1, 2)
        return F.scaled_dot_product_attention(heads, heads, heads).transpose(1, 2).reshape(x.shape)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(DIM)
        self.attn = Attention()
        self.fused = FusedAttention()
        self.mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.bare_norm = nn.LayerNorm(DIM, elementwise_affine=False)
        self.fc = nn.Linear(DIM, 4 * DIM)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fused(self.attn(self.norm(x)))
        x = self.mha(x, x, x, need_weights=False)[0]
        return self.act(self.fc(self.bare_norm(x))).sum(-1) @ torch.ones(TOKENS)   # a matmul in forward


def test_attention_norm_and_activation_counts():
    counts = module_flops(Block(), (TOKENS, DIM))
    assert counts == {
        "norm": 2 * TOKENS * DIM,                                    # affine LayerNorm: 2 per element
        "attn.qkv": TOKENS * DIM * 3 * DIM,
        "attn": 2 * HEADS * TOKENS * TOKENS * HEAD_DIM,              # q kᵀ and attn v
        "attn.proj": TOKENS * DIM * DIM,
        "fused": HEADS * TOKENS * TOKENS * 2 * HEAD_DIM,             # scaled_dot_product_attention
        "mha": 4 * TOKENS * DIM * DIM + 2 * TOKENS * TOKENS * DIM,   # q, k, v, out projections; q kᵀ, attn v
        "bare_norm": TOKENS * DIM,                                   # no affine: 1 per element
        "fc": TOKENS * DIM * 4 * DIM,
        "act": TOKENS * 4 * DIM,                                     # GELU: 1 per element
        "": TOKENS,                                                  # the model's own (1, T) @ (T,)
    }


def test_attention_with_separate_key_length_and_sequence_first_layout():
    mha = nn.MultiheadAttention(DIM, HEADS, kdim=3, vdim=5)

    class Cross(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x: torch.Tensor) -> torch.Tensor:   # (L, B, E) queries, 6 key/value positions
            return self.mha(x.transpose(0, 1), key=torch.ones(6, 1, 3), value=torch.ones(6, 1, 5))[0]

    assert module_flops(Cross(), (TOKENS, DIM)) == {
        "mha": 2 * TOKENS * DIM * DIM + 6 * (3 + 5) * DIM + 2 * TOKENS * 6 * DIM}


class BatchNormAct2d(nn.BatchNorm2d):
    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


def test_norms_activations_and_convolutions_of_every_dimension():
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, groups=2), BatchNormAct2d(4), nn.GroupNorm(2, 4),
                          nn.SiLU(), nn.Flatten(2), nn.Conv1d(4, 2, 1, bias=False), nn.Unflatten(2, (1, 3, 3)),
                          nn.Conv3d(2, 1, 1))
    counts = module_flops(model, (2, 3, 3))
    elements = 4 * 3 * 3
    assert counts == {
        "0": (9 * 1 * 4 + 4) * 9,      # grouped conv: k·C_in/groups·C_out + bias, per position
        "1": 2 * elements, "1.act": elements, "2": 2 * elements, "3": elements,
        "5": 4 * 2 * 9,                # Conv1d over 9 positions
        "7": (2 + 1) * 9,              # Conv3d 1x1x1 with bias
    }
    assert count_flops(model, (1, 2, 3, 3)) == sum(counts.values()) / 1e6   # (1, C, H, W) as before


def test_matmuls_inside_counted_modules_are_not_counted_twice():
    linear = nn.Linear(DIM, 3)
    assert module_flops(nn.Sequential(linear), (TOKENS, DIM)) == {"0": TOKENS * DIM * 3}


def test_model_mode_is_restored():
    model = Block().train()
    module_flops(model, (TOKENS, DIM))
    assert model.training
    with pytest.raises(ValueError, match="at least one dimension"):
        module_flops(model, ())
