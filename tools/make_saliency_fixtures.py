#!/usr/bin/env python3
"""Writes tests/fixtures/saliency.safetensors: Captum's own attributions (gradient saliency,
Integrated Gradients, Grad-CAM, guided backprop) for gradlens's LesionNet, so the Rust tests can
check gradlens's saliency methods against the reference implementation they are modelled on and
not only against gradlens's own finite differences. The network is small (widths 4, 6, 8; one
input channel; three classes) and its parameters and input come from the deterministic formula
of tools/make_model_fixtures.py (imported from there, so the two cannot drift), which the Rust
side reproduces bit for bit; only the input and Captum's outputs are stored. PyTorch and Captum
are developer tools here: the fixture is committed, and building or testing gradlens never runs
this script.

    python3 -m venv .venv && .venv/bin/pip install torch torchvision safetensors numpy captum \
        grad-cam
    /path/to/venv/bin/python tools/make_saliency_fixtures.py

The model, in PyTorch (eval mode, float32, CPU; state_dict names as gradlens's):

    features.0  Conv2d(1, 4, 3, padding=1, bias=False)   features.1  BatchNorm2d(4, eps=1e-5)
    features.2  ReLU                                     features.3  MaxPool2d(2)
    features.4  Conv2d(4, 6, 3, padding=1, bias=False)   features.5  BatchNorm2d(6)
    features.6  ReLU                                     features.7  MaxPool2d(2)
    features.8  Conv2d(6, 8, 3, padding=1, bias=False)   features.9  BatchNorm2d(8)
    features.10 ReLU
    global max pool (kernel = the whole remaining h×w), flatten, classifier Linear(8, 3)

Input: x [2, 1, 20, 20] = 2u - 1 under the name "input" (element index over the whole batch,
C order). Targets: class 0 for image 0, class 2 for image 1. Every method explains the logits
(no softmax). Stored tensors, all float32:

    input                                   [2, 1, 20, 20]
    logits                                  [2, 3]
    saliency                                [2, 1, 20, 20]  Saliency, abs=False (raw gradient)
    integrated_gradients                    [2, 1, 20, 20]  IG, zero baseline, 32 steps,
                                                            method="gausslegendre"
    integrated_gradients_delta              [2]             its convergence delta:
                                                            sum(attr) - (F(x) - F(0))
    integrated_gradients_riemann_trapezoid  [2, 1, 20, 20]  IG, method="riemann_trapezoid"
    gradcam_relu                            [2, 1, 5, 5]    LayerGradCam at features.10 with
                                                            relu_attributions=True (gradlens's
                                                            grad_cam applies the ReLU: its
                                                            low-resolution map is compared to
                                                            this; Captum's default, without the
                                                            ReLU, is only checked here)
    guided_backprop                         [2, 1, 20, 20]  GuidedBackprop
    guided_gradcam                          [2, 1, 20, 20]  GuidedGradCam at features.10
                                                            (guided backprop times the ReLU'd
                                                            Grad-CAM upsampled "nearest")
    cam_gradcam, cam_gradcam_plus_plus,     [2, 5, 5] each  pytorch-grad-cam's GradCAM,
    cam_hirescam, cam_layercam                              GradCAMPlusPlus, HiResCAM and
                                                            LayerCAM at features.10: each
                                                            class's own get_cam_image on the
                                                            activations and gradients it
                                                            hooked, ReLU'd, before its min-max
                                                            scaling and resizing (gradlens
                                                            compares its low-resolution maps)
    cam_scorecam                            [2, 5, 5]       pytorch-grad-cam's ScoreCAM there:
                                                            its softmax-of-masked-logits
                                                            weights times the activations,
                                                            ReLU'd, as above
    smoothgrad_noise_tunnel                 [2, 1, 20, 20]  NoiseTunnel(Saliency), smoothgrad,
                                                            8192 samples, σ = 0.15 × range
    smoothgrad_noise_tunnel_stderr          [2, 1, 20, 20]  its per-pixel sampling error
    occlusion_5_3                           [2, 1, 20, 20]  Occlusion, window (1, 5, 5),
                                                            strides (1, 3, 3), baseline 0
    occlusion_6_4_half                      [2, 1, 20, 20]  Occlusion, window (1, 6, 6),
                                                            strides (1, 4, 4), baseline 0.5
                                                            (its last windows cut off at the
                                                            edges)

The metadata key "config" holds JSON: targets, n_steps, the Grad-CAM layer, widths, and the exact
quadrature points (alphas) and weights (step sizes) Captum used for both IG methods, as Python
floats (f64 repr). Note Captum's riemann_trapezoid: alphas = torch.linspace(0, 1, n) in float32
(step = 1/(n-1) in f32; i < n/2: step * i, else 1 - step * (n-1-i); four of the 32 differ by an
ulp from (i/(n-1)) as f32), weights 1/n with the two ends halved, which sum to (n - 1)/n, not 1:
Captum's trapezoid IG is (n - 1)/n times a true trapezoid rule on those nodes. Gauss-Legendre:
alphas 0.5 * (1 + x), weights 0.5 * w from numpy.polynomial.legendre.leggauss(n). Captum forms
each path point as alpha * x with alpha rounded to float32 first, multiplies each step's gradient
by its weight as float32, and sums over steps in float32.
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (GuidedBackprop, GuidedGradCam, IntegratedGradients, LayerGradCam,
                         NoiseTunnel, Occlusion, Saliency)
from captum.attr._utils.approximation_methods import approximation_parameters
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import formula_state_dict, self_check, uniform  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

IN_CHANNELS = 1
WIDTHS = (4, 6, 8)
CLASSES = 3
SHAPE = (2, IN_CHANNELS, 20, 20)
TARGETS = [0, 2]
N_STEPS = 32
NT_SAMPLES = 8192
GRADCAM_LAYER = "features.10"


class LesionNet(nn.Module):
    """gradlens's LesionNet: three conv-BN-ReLU blocks (the first two max-pooled by 2), a global
    max pool, a linear head. Separate, non-inplace ReLU modules (Captum's GuidedBackprop hooks
    nn.ReLU modules)."""

    def __init__(self, in_channels=IN_CHANNELS, classes=CLASSES, widths=WIDTHS):
        super().__init__()
        layers, channels = [], in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width, eps=1e-5),
                       nn.ReLU(inplace=False)]
            if i + 1 < len(widths):
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.features(x)
        x = F.max_pool2d(x, kernel_size=tuple(x.shape[2:]))
        return self.classifier(torch.flatten(x, 1))


def build():
    model = LesionNet()
    names = [name for name, _ in model.named_modules()]
    assert [n for n in names if n.startswith("features.")] == [f"features.{i}" for i in range(11)]
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 and len({id(m) for m in relus}) == 3
    assert all(not m.inplace for m in relus)
    model.load_state_dict(formula_state_dict(model), strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# Occlusion's cases: (name, patch, stride, baseline).
OCCLUSIONS = [("occlusion_5_3", 5, 3, 0.0), ("occlusion_6_4_half", 6, 4, 0.5)]


def formula_input() -> torch.Tensor:
    u = uniform("input", int(np.prod(SHAPE)))
    return torch.from_numpy((2.0 * u - 1.0).astype(np.float32).reshape(SHAPE))


def attributions(model, x):
    """Every stored tensor, computed with Captum."""
    target = list(TARGETS)
    out = {"input": x.clone()}
    with torch.no_grad():
        out["logits"] = model(x).contiguous()
    out["saliency"] = Saliency(model).attribute(x.clone(), target=target, abs=False)
    ig = IntegratedGradients(model)
    attr, delta = ig.attribute(x.clone(), baselines=torch.zeros_like(x), target=target,
                               n_steps=N_STEPS, method="gausslegendre",
                               return_convergence_delta=True)
    out["integrated_gradients"] = attr
    out["integrated_gradients_delta"] = delta.float()
    out["integrated_gradients_riemann_trapezoid"] = ig.attribute(
        x.clone(), baselines=torch.zeros_like(x), target=target, n_steps=N_STEPS,
        method="riemann_trapezoid")
    layer = model.features[int(GRADCAM_LAYER.split(".")[1])]
    out["gradcam"] = LayerGradCam(model, layer).attribute(x.clone(), target=target)
    out["gradcam_relu"] = LayerGradCam(model, layer).attribute(x.clone(), target=target,
                                                               relu_attributions=True)
    out["guided_backprop"] = GuidedBackprop(model).attribute(x.clone(), target=target)
    out["guided_gradcam"] = GuidedGradCam(model, layer).attribute(x.clone(), target=target)
    out.update(cam_family(model, x))
    out.update(noise_tunnel(model, x))
    for name, patch, stride, baseline in OCCLUSIONS:
        out[name] = Occlusion(model).attribute(
            x.clone(), sliding_window_shapes=(1, patch, patch), strides=(1, stride, stride),
            baselines=baseline, target=target)
    return {k: v.detach().contiguous().to(torch.float32) for k, v in out.items()}


def cam_family(model, x):
    """pytorch-grad-cam's CAMs at the Grad-CAM layer, low resolution, ReLU'd (as its
    compute_cam_per_layer does before scaling each map to [0, 1] and resizing it)."""
    layer = model.features[int(GRADCAM_LAYER.split(".")[1])]
    targets = [ClassifierOutputTarget(t) for t in TARGETS]
    out = {}
    for name, kind in [("cam_gradcam", GradCAM), ("cam_gradcam_plus_plus", GradCAMPlusPlus),
                       ("cam_hirescam", HiResCAM), ("cam_layercam", LayerCAM)]:
        cam = kind(model=model, target_layers=[layer])
        outputs = cam.activations_and_grads(x.clone().requires_grad_(True))
        model.zero_grad()
        sum(target(output) for target, output in zip(targets, outputs)).backward()
        hooked = cam.activations_and_grads
        activations = hooked.activations[0].numpy()
        gradients = hooked.gradients[0].numpy()
        image = cam.get_cam_image(x, layer, targets, activations, gradients, False)
        out[name] = torch.from_numpy(np.maximum(image, 0).astype(np.float32))
        hooked.release()
    # Score-CAM needs no gradients: its weights come from forward passes of the input masked
    # by each activation map (upsampled, align_corners=True, and min-max scaled).
    cam = ScoreCAM(model=model, target_layers=[layer])
    with torch.no_grad():
        cam.activations_and_grads(x.clone())
    activations = cam.activations_and_grads.activations[0].numpy()
    image = cam.get_cam_image(x, layer, targets, activations, None, False)
    out["cam_scorecam"] = torch.from_numpy(np.maximum(image, 0).astype(np.float32))
    cam.activations_and_grads.release()
    return out


def noise_tunnel(model, x):
    """Captum's NoiseTunnel over Saliency (abs=True), nt_type="smoothgrad", NT_SAMPLES samples per
    image with σ = 0.15 × the image's value range (gradlens's SmoothGrad default), one image at a
    time (Captum takes one σ per input). The noise is Captum's, drawn from torch's generator
    (seeded here, so a recompute matches); gradlens draws its own, so the test compares means
    within their sampling error: the per-pixel standard error of a mean of NT_SAMPLES values of
    |gradient|, estimated here from NT_SAMPLES noisy copies drawn and differentiated apart."""
    out_mean, out_error = [], []
    for b, target in enumerate(TARGETS):
        image = x[b:b + 1].clone()
        sigma = float(np.float32(0.15) * (image.max() - image.min()).to(torch.float32))
        torch.manual_seed(1234 + b)
        mean = NoiseTunnel(Saliency(model)).attribute(
            image, nt_type="smoothgrad", nt_samples=NT_SAMPLES, nt_samples_batch_size=1024,
            stdevs=sigma, target=target)
        noisy = (image + sigma * torch.randn((NT_SAMPLES,) + tuple(image.shape[1:]))
                 ).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(noisy)[:, target].sum(), noisy)
        error = grad.abs().std(dim=0, keepdim=True) / np.sqrt(NT_SAMPLES)
        out_mean.append(mean)
        out_error.append(error)
    return {"smoothgrad_noise_tunnel": torch.cat(out_mean).contiguous(),
            "smoothgrad_noise_tunnel_stderr": torch.cat(out_error).contiguous()}


def quadrature(method):
    step_sizes, alphas = approximation_parameters(method)
    return [float(a) for a in alphas(N_STEPS)], [float(s) for s in step_sizes(N_STEPS)]


def score_gradient(model, x):
    """d (sum_b logits[b, target_b]) / dx by plain autograd."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    score = logits[torch.arange(len(TARGETS)), torch.tensor(TARGETS)].sum()
    (grad,) = torch.autograd.grad(score, x)
    return grad


def checks(model, x, t):
    """Independent re-derivations of Captum's results, to pin down what the Rust side matches."""
    # Saliency is the raw gradient of the target logits.
    grad = score_gradient(model, x)
    print(f"saliency vs autograd.grad: max |diff| {(t['saliency'] - grad).abs().max():.3e}"
          f" (exactly equal: {torch.equal(t['saliency'], grad)})")

    # IG by hand: alphas as Captum forms them (python float times a float32 tensor), float32
    # step sizes, summed over steps, times (x - 0).
    for key, method in [("integrated_gradients", "gausslegendre"),
                        ("integrated_gradients_riemann_trapezoid", "riemann_trapezoid")]:
        alphas, steps = quadrature(method)
        total = torch.zeros_like(x)
        for a, s in zip(alphas, steps):
            total += score_gradient(model, a * x) * torch.tensor(s, dtype=torch.float32)
        hand = total * x
        print(f"{key} vs hand-rolled: max |diff| {(t[key] - hand).abs().max():.3e}")
        sums = t[key].sum(dim=(1, 2, 3)).double()
        print(f"  {method}: weights sum {sum(steps):.17g}; sum(attr) per image "
              f"{sums.tolist()}")
    with torch.no_grad():
        diff = (model(x) - model(torch.zeros_like(x)))[torch.arange(2), torch.tensor(TARGETS)]
    print(f"F(x) - F(0) for the targets: {diff.tolist()}")
    print(f"IG (gausslegendre) delta: {t['integrated_gradients_delta'].tolist()}")
    trap = t["integrated_gradients_riemann_trapezoid"].sum(dim=(1, 2, 3))
    print(f"riemann_trapezoid sum(attr) - diff: {(trap - diff).tolist()}; "
          f"after x n/(n-1): {(trap * N_STEPS / (N_STEPS - 1) - diff).tolist()}")

    # Grad-CAM by hand at features.10's output.
    acts = {}
    handle = model.features[10].register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    handle.remove()
    a = acts["a"]
    score = logits[torch.arange(2), torch.tensor(TARGETS)].sum()
    (g,) = torch.autograd.grad(score, a)
    cam = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True).detach()
    print(f"gradcam vs hand-rolled: max |diff| {(t['gradcam'] - cam).abs().max():.3e}; "
          f"gradcam_relu vs relu(hand): {(t['gradcam_relu'] - cam.clamp(min=0)).abs().max():.3e}")
    a = a.detach()
    flat = a.flatten(2)
    top = flat.max(dim=2).values
    ties = (flat == top.unsqueeze(2)).sum(dim=2)
    print(f"features.10 map {tuple(a.shape)}; channels all zero per image: "
          f"{(top == 0).sum(dim=1).tolist()}; positive maxima attained more than once: "
          f"{int(((ties > 1) & (top > 0)).sum())}")
    print(f"gradcam negatives (clipped by the ReLU): {int((t['gradcam'] < 0).sum())} of "
          f"{t['gradcam'].numel()}")

    # Guided backprop by hand: relu(grad) through every ReLU (x > 0 mask), max pools untouched.
    class GuidedReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, inp):
            out = inp.clamp(min=0)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return grad.clamp(min=0) * (out > 0).to(grad.dtype)

    def guided_forward(inp):
        h = inp
        for m in model.features:
            h = GuidedReLU.apply(h) if isinstance(m, nn.ReLU) else m(h)
        h = F.max_pool2d(h, kernel_size=tuple(h.shape[2:]))
        return model.classifier(torch.flatten(h, 1))

    xg = x.clone().requires_grad_(True)
    out = guided_forward(xg)
    (gb,) = torch.autograd.grad(out[torch.arange(2), torch.tensor(TARGETS)].sum(), xg)
    print(f"guided_backprop vs hand-rolled (ReLUs only guided): max |diff| "
          f"{(t['guided_backprop'] - gb).abs().max():.3e}")


def main():
    # Captum says it set requires_grad on the input and hooked the ReLUs: expected, not news.
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    self_check()
    model = build()
    x = formula_input()
    tensors = attributions(model, x)

    gl_alphas, gl_steps = quadrature("gausslegendre")
    tr_alphas, tr_steps = quadrature("riemann_trapezoid")
    config = {
        "occlusions": [{"name": name, "patch": patch, "stride": stride, "baseline": baseline}
                       for name, patch, stride, baseline in OCCLUSIONS],
        "in_channels": IN_CHANNELS, "widths": list(WIDTHS), "classes": CLASSES,
        "input_shape": list(SHAPE), "targets": TARGETS, "n_steps": N_STEPS,
        "baseline": "zeros", "score": "logit", "gradcam_layer": GRADCAM_LAYER,
        "gradcam_compare": "gradcam_relu",
        "gausslegendre": {"alphas": gl_alphas, "step_sizes": gl_steps},
        "riemann_trapezoid": {"alphas": tr_alphas, "step_sizes": tr_steps},
    }
    for name, (al, st) in [("gausslegendre", (gl_alphas, gl_steps)),
                           ("riemann_trapezoid", (tr_alphas, tr_steps))]:
        print(f"{name}: first alphas {al[:3]}, first step sizes {st[:3]}, "
              f"last alpha {al[-1]!r}, last step {st[-1]!r}")

    checks(model, x, tensors)
    for name, t in tensors.items():
        print(f"{name:40s} {str(list(t.shape)):16s} max|.| {t.abs().max():.6e}")

    # The CAM without the ReLU served the checks above; no gradlens test reads it.
    tensors.pop("gradcam")
    path = OUT / "saliency.safetensors"
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata={"config": json.dumps(config)})
    print(f"wrote {path} ({path.stat().st_size} bytes)")

    # Reload and recompute from a freshly built model: must match exactly.
    back = load_file(path)
    again = attributions(build(), back["input"])
    for name, t in back.items():
        assert torch.equal(t, again[name]), f"{name} differs on recompute"
    print("recomputed every tensor from a fresh model: all match exactly")


if __name__ == "__main__":
    main()
