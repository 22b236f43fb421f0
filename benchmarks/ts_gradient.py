"""How hard the TS loss pulls on the translated image, per rSMI estimator setting, against hDCE's pull.

    python benchmarks/ts_gradient.py RUN_DIR SOURCE_IMAGES                 # RUN_DIR's last checkpoint
    python benchmarks/ts_gradient.py RUN_DIR SOURCE_IMAGES --init         # the same networks, untrained
    python benchmarks/ts_gradient.py RUN_DIR SOURCE_IMAGES --branch local --set ts_estimator=grid,rsmi_alpha=0.2

For each source image (the first ``--images`` of SOURCE_IMAGES, cropped to the run's crop size) the branch's
generator translates it; then the training step's own patch losses (`semst.training.step.patch_losses`, its
patch locations, projection and TS taps) run once with only hDCE weighted and once per setting with only TS
weighted, and the norm of the gradient of ``lambda_hDCE * hDCE`` and of ``lambda_TS * TS`` with respect to
the translated image is measured (the identity half of hDCE and the GAN loss are left out). Settings are compared at the run's own
lambda_TS unless ``--set`` changes ``ts_weight``, so the ratio of two settings' gradient norms is the factor
by which lambda_TS would have to change to give one the other's pull. Results and commands are recorded in
docs/experiments.md (experiment 54).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from semst.config import ConfigError, ExperimentConfig, LossConfig, read_config_file
from semst.data.images import load_rgb
from semst.training.networks import TrainingNetworks
from semst.training.state import load_training_checkpoint
from semst.training.step import patch_losses


def parse_setting(text: str) -> dict[str, object]:
    """``name=value,name=value`` of LossConfig fields; values parsed as YAML scalars (numbers, strings)."""
    import yaml

    pairs = (item.split("=", 1) for item in text.split(",") if item)
    return {name.strip(): yaml.safe_load(value) for name, value in pairs}


def gradient_norm(loss: torch.Tensor, image: torch.Tensor) -> float:
    """Norm of d loss / d image (the graph is kept for the next term)."""
    (gradient,) = torch.autograd.grad(loss, image, retain_graph=True)
    return gradient.norm().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a training run's folder (config.yaml, checkpoints/)")
    parser.add_argument("images", type=Path, help="a folder of source-domain images")
    parser.add_argument("--images", dest="count", type=int, default=6, help="how many images")
    parser.add_argument("--branch", default=None, help="generator branch (multi-scale: global, local)")
    parser.add_argument("--init", action="store_true", help="freshly initialised networks (seed 0)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE,...",
        help="a TS setting to compare with the run's own (LossConfig fields); repeatable",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = ExperimentConfig.from_dict(read_config_file(args.run / "config.yaml"))
    settings: dict[str, LossConfig] = {"the run's own": config.loss}
    for text in args.set:
        overrides = {f"loss.{name}": value for name, value in parse_setting(text).items()}
        try:  # the project's own override path: known fields and their types ...
            changed = config.replace(overrides, source=f"--set {text}")
        except ConfigError as exc:
            parser.error(str(exc))
        try:  # ... and ranges
            settings[text] = changed.validate().loss
        except ConfigError as exc:
            parser.error(f"--set {text}: {exc}")
    checkpoints = sorted((args.run / "checkpoints").glob("*.safetensors"))
    if not args.init and not checkpoints:
        parser.error(
            f"{args.run / 'checkpoints'}: no checkpoint (*.safetensors); train the run or pass --init"
        )
    torch.manual_seed(0)
    networks = TrainingNetworks.from_config(config)
    if not args.init:
        checkpoint = checkpoints[-1]
        load_training_checkpoint(checkpoint, networks=networks, optimizers={})
        print(f"weights: {checkpoint}")
    networks.eval()
    branches = networks.translator.branches()
    branch = args.branch or next(iter(branches))
    generator, projector = branches[branch], networks.projectors[branch]
    taps, size = config.projection.taps, config.data.crop_size

    norms: dict[str, list[float]] = {"hDCE": [], **{name: [] for name in settings}}
    values: dict[str, list[float]] = {name: [] for name in settings}
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for index, path in enumerate(paths[: args.count]):
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 127.5 - 1.0  # (H, W, 3) in [-1, 1]
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None, :, :size, :size].contiguous()  # (1, 3, s, s)
        with torch.no_grad():
            translated = generator(image)
            real_features = generator.encode(image, taps)
        translated.requires_grad_(True)
        fake_features = generator.encode(translated, taps)

        common = dict(batch=1, projection_cfg=config.projection, seed=0, step=index)
        only_hdce = dataclasses.replace(config.loss, ts_weight=0.0)
        hdce, _ = patch_losses(projector, real_features, fake_features, loss_cfg=only_hdce, **common)
        norms["hDCE"].append(gradient_norm(hdce, translated))  # of lambda_hDCE * hDCE
        for name, loss_cfg in settings.items():
            only_ts = dataclasses.replace(loss_cfg, contrastive_weight=0.0)
            ts, named = patch_losses(projector, real_features, fake_features, loss_cfg=only_ts, **common)
            values[name].append(-named["G/ts"].item())
            norms[name].append(gradient_norm(ts, translated))  # of lambda_TS * TS

    hdce_norms = np.array(norms["hDCE"])
    print(f"branch {branch}, {len(hdce_norms)} images, crop {size}, taps {', '.join(taps)}")
    print("| term | gradient norm on the translation | ratio to hDCE's | mean rSMI |")
    print("|---|---|---|---|")
    print(f"| lambda_hDCE hDCE | {hdce_norms.mean():.4g} | 1 | |")
    for name in settings:
        ratio = np.mean(np.array(norms[name]) / hdce_norms)
        weight = settings[name].ts_weight
        print(
            f"| {weight:g} x TS ({name}) | {np.mean(norms[name]):.4g} | {ratio:.3f} | {np.mean(values[name]):.4f} |"
        )


if __name__ == "__main__":
    main()
