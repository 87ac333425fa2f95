#!/usr/bin/env python3
"""Writes tests/fixtures/*.safetensors: PyTorch's own results for a handful of layer
configurations, forward and backward, so the Rust tests can check gradlens against PyTorch
itself and not only against gradlens's references. PyTorch is a developer tool here: the
fixtures are committed, and building or testing gradlens never runs this script.

    python3 -m venv .venv && .venv/bin/pip install torch safetensors
    .venv/bin/python tools/make_fixtures.py

Each case stores `<name>.x` (input), `<name>.grad_out`, `<name>.y` (output) and `<name>.grad_x`
(input gradient), plus parameter gradients where the layer has them; shapes travel in the
tensors, layer settings in the file's metadata (JSON, one entry per case).
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def case(tensors, meta, name, x, forward, settings, params=()):
    """Runs forward and backward on a copy of x and records everything under `name`."""
    x = x.clone().requires_grad_(True)
    params = [p.clone().requires_grad_(True) for p in params]
    y = forward(x, *params)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    tensors[f"{name}.x"] = x.detach()
    tensors[f"{name}.y"] = y.detach()
    tensors[f"{name}.grad_out"] = grad_out
    tensors[f"{name}.grad_x"] = x.grad
    for i, p in enumerate(params):
        tensors[f"{name}.param{i}"] = p.detach()
        tensors[f"{name}.grad_param{i}"] = p.grad
    meta[name] = json.dumps(settings)


def pooling():
    tensors, meta = {}, {}
    torch.manual_seed(0)
    # (name, input shape, kernel, stride, padding, ceil_mode)
    windows = [
        ("googlenet_pool", (1, 3, 15, 15), 3, 2, 0, True),
        ("resnet_pool", (2, 3, 14, 13), 3, 2, 1, False),
        ("ceil_pad", (1, 2, 8, 10), (2, 3), (3, 4), (0, 1), True),
        ("inception_pool", (1, 4, 9, 9), 3, 1, 1, False),
    ]
    for name, shape, k, s, p, ceil in windows:
        x = torch.randn(shape)
        settings = {"kernel": k, "stride": s, "padding": p, "ceil_mode": ceil}
        case(tensors, meta, f"max.{name}", x,
             lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil), settings)
        for include_pad in (True, False):
            case(tensors, meta, f"avg.{name}.{'include' if include_pad else 'exclude'}_pad", x,
                 lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil,
                                        count_include_pad=include_pad),
                 {**settings, "count_include_pad": include_pad})
    for name, shape, out in [("vgg", (1, 3, 9, 11), (7, 7)), ("global", (2, 5, 7, 7), (1, 1))]:
        case(tensors, meta, f"adaptive.{name}", torch.randn(shape),
             lambda t: F.adaptive_avg_pool2d(t, out), {"output": out})
    save_file(tensors, OUT / "pool.safetensors", metadata=meta)


def batch_norm():
    tensors, meta = {}, {}
    torch.manual_seed(1)
    for name, shape, eps in [("default_eps", (3, 5, 4, 6), 1e-5), ("basic_conv", (2, 4, 5, 5), 1e-3)]:
        x = torch.randn(shape) * 2 + 1
        c = shape[1]
        weight, bias = torch.randn(c), torch.randn(c)
        running_mean, running_var = torch.randn(c), torch.rand(c) + 0.5
        # Training mode: batch statistics, and the running statistics it leaves behind.
        rm, rv = running_mean.clone(), running_var.clone()
        case(tensors, meta, f"train.{name}", x,
             lambda t, w, b: F.batch_norm(t, rm, rv, w, b, training=True, momentum=0.1, eps=eps),
             {"eps": eps, "momentum": 0.1}, (weight, bias))
        tensors[f"train.{name}.running_mean_before"] = running_mean.clone()
        tensors[f"train.{name}.running_var_before"] = running_var.clone()
        tensors[f"train.{name}.running_mean_after"] = rm
        tensors[f"train.{name}.running_var_after"] = rv
        # Eval mode: running statistics, differentiable in x.
        case(tensors, meta, f"eval.{name}", x,
             lambda t, w, b: F.batch_norm(t, running_mean, running_var, w, b, training=False,
                                          eps=eps),
             {"eps": eps}, (weight, bias))
        tensors[f"eval.{name}.running_mean"] = running_mean
        tensors[f"eval.{name}.running_var"] = running_var
    save_file(tensors, OUT / "batchnorm.safetensors", metadata=meta)


def convolutions():
    tensors, meta = {}, {}
    torch.manual_seed(3)
    # (name, input shape, weight shape, stride, padding, dilation, groups)
    convs = [
        ("resnet_stem", (1, 3, 15, 15), (4, 3, 7, 7), 2, 3, 1, 1),
        ("inception_1x7", (2, 3, 9, 9), (5, 3, 1, 7), 1, (0, 3), 1, 1),
        ("inception_7x1", (1, 4, 9, 8), (3, 4, 7, 1), 1, (3, 0), 1, 1),
        ("dilated_grouped", (2, 4, 9, 9), (6, 2, 3, 3), 1, 2, 2, 2),
        ("pointwise", (1, 8, 5, 5), (6, 8, 1, 1), 1, 0, 1, 1),
    ]
    for name, shape, w_shape, stride, padding, dilation, groups in convs:
        weight, bias = torch.randn(w_shape), torch.randn(w_shape[0])
        case(tensors, meta, f"conv.{name}", torch.randn(shape),
             lambda t, w, b: F.conv2d(t, w, b, stride, padding, dilation, groups),
             {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups},
             (weight, bias))
    save_file(tensors, OUT / "conv2d.safetensors", metadata=meta)


def losses():
    tensors, meta = {}, {}
    torch.manual_seed(2)
    logits = torch.randn(6, 5) * 3
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    weight = torch.rand(5) + 0.5
    for name, w in [("plain", None), ("weighted", weight)]:
        case(tensors, meta, f"cross_entropy.{name}", logits,
             lambda t: F.nll_loss(F.log_softmax(t, dim=1), targets, weight=w).reshape(()),
             {"targets": targets.tolist()})
        if w is not None:
            tensors[f"cross_entropy.{name}.class_weight"] = w
    save_file(tensors, OUT / "loss.safetensors", metadata=meta)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    pooling()
    batch_norm()
    convolutions()
    losses()
    print("wrote", sorted(p.name for p in OUT.glob("*.safetensors")))
