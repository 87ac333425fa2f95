#!/usr/bin/env python3
"""Exports a torchvision classification model's weights to a safetensors file that gradlens loads:
torchvision's pretrained weights (downloaded through torchvision's own cache), or any state_dict
of a torchvision model saved with torch.save (a fine-tuned model, say). Needs torch, torchvision
and safetensors; gradlens itself never runs Python.

    python3 -m venv .venv && .venv/bin/pip install torch torchvision safetensors
    .venv/bin/python tools/export_torchvision.py --arch resnet50 --weights DEFAULT --out resnet50.safetensors
    .venv/bin/python tools/export_torchvision.py --arch resnet18 --state-dict finetuned.pth --out r18.safetensors

Every tensor of the state dict is written under torchvision's name, contiguous, floating-point
ones as float32 (float16 with --half), integer ones (BatchNorm's num_batches_tracked) as they
are. The file's metadata says "arch", "classes" (rows of the final layer), "source" (the weights'
enum name or the state-dict file's name), "mean" and "std" (JSON lists: the normalisation the
input expects), "transform_input" ("true" or "false": GoogLeNet and Inception v3 re-normalise
their input internally when built from pretrained weights) and "input_size" (crop side in pixels).

Before writing, the state dict's names and shapes are checked, strictly, against an empty
(meta-device, so nothing is allocated) torchvision model of that arch, so a file of the wrong arch
is refused rather than exported.
"""
import argparse
import difflib
import json
import os
import re
import sys
import warnings
from pathlib import Path

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# The checkpoint-style DenseNet keys (`denselayer1.norm.1.weight`) that torchvision renames on
# load (`denselayer1.norm1.weight`); gradlens renames them the same way.
LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


class Fail(Exception):
    """An error reported as one line, exit code 1."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Export a torchvision model's weights to a safetensors file for gradlens.",
        epilog="Names are torchvision's state_dict names, unchanged. DenseNet state dicts that "
               "still use the old checkpoint-style keys (...denselayer1.norm.1.weight) are "
               "written as they are: gradlens renames them itself, as torchvision does. A "
               "'module.' prefix (DataParallel) is removed.")
    parser.add_argument("--arch", required=True,
                        help="torchvision model name: resnet50, vgg16_bn, googlenet, "
                             "inception_v3, densenet121, ...")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", metavar="NAME",
                        help="torchvision pretrained weights: DEFAULT, IMAGENET1K_V1, "
                             "IMAGENET1K_V2, ... (downloaded into torchvision's cache)")
    source.add_argument("--state-dict", metavar="FILE.pth", type=Path,
                        help="a state_dict saved with torch.save (or a dict holding one under "
                             "'state_dict' or 'model')")
    parser.add_argument("--out", required=True, type=Path, help="safetensors file to write")
    parser.add_argument("--half", action="store_true",
                        help="store floating-point tensors as float16 (half the size)")
    parser.add_argument("--transform-input", choices=["true", "false"],
                        help="override the transform_input metadata (default: true for "
                             "googlenet / inception_v3 with --weights, false otherwise)")
    return parser.parse_args(argv)


def check_arch(torchvision, arch):
    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise Fail(f"unknown arch '{arch}' (not a torchvision classification model){hint}")


def from_weights(torchvision, arch, name):
    """Pretrained weights: (state_dict, source, mean, std, input_size)."""
    enum = torchvision.models.get_model_weights(arch)
    short = name.split(".")[-1]
    if short == "DEFAULT":
        weights = enum.DEFAULT
    elif short in enum.__members__:
        weights = enum[short]
    else:
        raise Fail(f"{arch} has no weights '{name}'; it has DEFAULT, "
                   f"{', '.join(w.name for w in enum)}")
    try:
        model = torchvision.models.get_model(arch, weights=weights)
    except Exception as error:  # network, cache or hash problems
        raise Fail(f"cannot get {weights}: {one_line(error)}") from None
    preset = weights.transforms()
    mean = [float(v) for v in getattr(preset, "mean", IMAGENET_MEAN)]
    std = [float(v) for v in getattr(preset, "std", IMAGENET_STD)]
    crop = getattr(preset, "crop_size", None)
    size = int(crop[0]) if crop else default_input_size(arch)
    return model.state_dict(), str(weights), mean, std, size


def from_file(torch, path):
    """A state_dict saved with torch.save: the plain dict of tensors."""
    if not path.is_file():
        raise Fail(f"cannot read {path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise Fail(f"cannot read {path} as a PyTorch state_dict: {load_error(error)}") from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded:
        raise Fail(f"{path} holds no state_dict (a dict of tensor names to tensors)")
    not_tensors = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise Fail(f"{path}: not a state_dict: {len(not_tensors)} entries are not tensors "
                   f"(first: {not_tensors[0]!r})")
    if all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return loaded


def default_input_size(arch):
    return 299 if arch == "inception_v3" else 224


def classes_of(state):
    """Rows of the final layer: fc, classifier, classifier.6 (VGG, AlexNet), else the last
    weight outside the aux heads in state-dict order (the final layer comes last in
    torchvision's models)."""
    for name in ("fc.weight", "classifier.weight", "classifier.6.weight"):
        if name in state:
            return int(state[name].shape[0])
    weights = [k for k, v in state.items()
               if k.endswith(".weight") and v.dim() >= 2 and not k.startswith(AUX_PREFIXES)]
    if not weights:
        raise Fail("cannot find the final layer in the state dict")
    return int(state[weights[-1]].shape[0])


def check_fits(torch, torchvision, arch, state, classes):
    """Compares names and shapes, strictly, with an empty (meta-device) torchvision `arch`."""
    renamed = {}
    for key, value in state.items():
        match = LEGACY_DENSENET.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    kwargs = {"num_classes": classes}
    if arch in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = False
        kwargs["aux_logits"] = any(k.startswith(AUX_PREFIXES) for k in renamed)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(arch, weights=None, **kwargs)
    except Exception as error:
        raise Fail(f"cannot build {arch} with {classes} classes: {one_line(error)}") from None
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in renamed]
    unexpected = [k for k in renamed if k not in wanted]
    misshaped = [f"{k} {tuple(renamed[k].shape)} (expected {tuple(v.shape)})"
                 for k, v in wanted.items()
                 if k in renamed and tuple(renamed[k].shape) != tuple(v.shape)]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("wrong shape", misshaped)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            problems.append(f"{label} {', '.join(items[:3])}{more}")
    if problems:
        raise Fail(f"the state dict does not fit torchvision's {arch}: {'; '.join(problems)}")


def load_error(error):
    """torch.load's weights-only refusals, shortened to their cause."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    cause = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", text.strip() + "\n", re.S)
    if cause is None:
        return one_line(text)
    cause = cause.group(1).strip()
    unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", cause)
    if unsafe:
        return (f"it holds a Python object ({unsafe.group(1)}), not just tensors; "
                "save model.state_dict() instead of the model")
    return f"not a PyTorch checkpoint ({one_line(cause)})"


def one_line(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def export(args):
    try:
        import torch
        import torchvision
        from safetensors.torch import save_file
    except ImportError as error:
        raise Fail(f"needs torch, torchvision and safetensors: {error}") from None
    check_arch(torchvision, args.arch)
    if args.weights is not None:
        state, source, mean, std, size = from_weights(torchvision, args.arch, args.weights)
        transform = args.arch in ("googlenet", "inception_v3")
    else:
        state = from_file(torch, args.state_dict)
        source, mean, std = args.state_dict.name, IMAGENET_MEAN, IMAGENET_STD
        size = default_input_size(args.arch)
        transform = False
    if args.transform_input is not None:
        transform = args.transform_input == "true"
    classes = classes_of(state)
    check_fits(torch, torchvision, args.arch, state, classes)

    float_type = torch.float16 if args.half else torch.float32
    tensors = {}
    for name, value in state.items():
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(float_type)
        tensors[name] = value.contiguous()
    metadata = {
        "arch": args.arch,
        "classes": str(classes),
        "source": source,
        "mean": json.dumps(mean),
        "std": json.dumps(std),
        "transform_input": "true" if transform else "false",
        "input_size": str(size),
    }
    if not args.out.parent.is_dir():
        raise Fail(f"cannot write {args.out}: no directory {args.out.parent}")
    partial = args.out.with_name(args.out.name + ".partial")
    try:
        save_file(tensors, partial, metadata=metadata)
        os.replace(partial, args.out)
    except Exception as error:
        partial.unlink(missing_ok=True)
        raise Fail(f"cannot write {args.out}: {one_line(error)}") from None
    total = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.out}: {args.arch}, {len(tensors)} tensors, {total:,} values, "
          f"{classes} classes, {args.out.stat().st_size:,} bytes (from {source})")


def main(argv=None):
    args = parse_args(argv)
    try:
        export(args)
    except Fail as error:
        print(f"export_torchvision: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
