"""Experiments behind the defaults of semst.losses (rSMI sigma/lambda, rsmi_grid sigma, hDCE beta).

Results and their reading: docs/losses.md. Usage (CPU, 2 threads; generating the embeddings takes about 2 min,
the sigma/lambda search about 5-10 min, the other parts under 2 min each):

    python benchmarks/rsmi_defaults.py --part all --seeds 10 --cache /tmp/data_random.pt --out random.json
    python benchmarks/rsmi_defaults.py --part all --seeds 10 --cache /tmp/data_pre.pt --out pre.json \
        --pretrained PATH/TO/G_A2B_epoch33.pth

Parts: rsmi (sigma x lambda search, then 'defaults'), defaults (gradients, centre subsets, numerator choice at
the current defaults), grid (rsmi_grid vs rsmi), hdce (effective number of negatives vs beta), timing.

``--pretrained`` loads a trained CycleGAN/CUT-style ResNet generator's state dict (keys ``model.<i>...`` of
the 2-downsampling, 9-block layout), e.g. the one in the MIT-licensed ``vintagify`` 0.1.2 wheel
(``vintagify/resources/G_A2B_epoch33.pth``; ``pip download vintagify==0.1.2 --no-deps`` and unzip), so that
the patch embeddings come from a trained encoder. Without it the encoder has CUT's init (xavier_normal, gain
0.02).

Data: "isotropic" = n = 256 random unit vectors in d = 256 (the worst case for distance kernels: all pairwise
distances concentrate near sqrt(2)); "image" = CUT-style patch embeddings: a photo from skimage.data is
encoded, 256 random locations are taken at five taps (padded input, the two downsampling convs, residual
blocks 1 and 5) and a random 2-layer MLP head (256 units, L2-normalised output) maps each tap to 256-d, as
CUT's PatchSampleF does. Dependence levels of the image family: another photo at shuffled locations
(independent), the mixes ``a * photo + (1 - a) * other photo`` for a = 0.2 / 0.5 / 0.8, and a
colour-"translated" copy of the photo (gamma, channel mixing, noise) standing in for a good translation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semst.losses.hdce import hdce_loss, hdce_negative_weights
from semst.losses.structure_texture import (
    RSMI_DEFAULT_LAMBDA,
    _bandwidth,
    _gaussian_features,
    _median_bandwidth,
    _rulsif_from_moments,
    rsmi,
    rsmi_grid,
)

NUM_SAMPLES = 256
DIM = 256
SIGMA_SCALES = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)
LAMBDAS = (1e-3, 1e-2, 1e-1)
GRID_SIGMAS = (0.05, 0.1, 0.25, 0.5, 1.0)
BETAS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field")


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


def isotropic_levels(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Synthetic unit vectors: {family: {level: y}} plus the shared x under key 'x'."""
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(NUM_SAMPLES, DIM, generator=g), dim=1)  # (n, d)
    rotation = torch.linalg.qr(torch.randn(DIM, DIM, generator=g))[0]  # (d, d)
    w1 = torch.randn(DIM, DIM, generator=g) / math.sqrt(DIM)
    w2 = torch.randn(DIM, DIM, generator=g) / math.sqrt(DIM)
    nonlinear = F.normalize(torch.tanh(3.0 * x @ w1) @ w2, dim=1)  # (n, d)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for family, signal in (("iso-linear", x @ rotation), ("iso-nonlinear", nonlinear)):
        levels = {"x": x}
        for a in (0.0, 0.2, 0.4, 0.6, 0.8):
            noise = F.normalize(torch.randn(NUM_SAMPLES, DIM, generator=g), dim=1)
            levels[f"a={a}"] = F.normalize(a * signal + (1.0 - a) * noise, dim=1)
        out[family] = levels
    return out


class _ResnetBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim, affine=True),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class _Encoder(nn.Module):
    """Encoder half of a CycleGAN ResNet generator; module indices match its ``model.<i>`` state-dict keys."""

    # Taps analogous to CUT's nce_layers 0, 4, 8, 12, 16: padded input, the two downsampling convs (before
    # their norm), residual blocks 1 and 5.
    TAPS = (0, 4, 7, 10, 14)
    TAP_CHANNELS = (3, 128, 256, 256, 256)

    def __init__(self, blocks: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, 64, 7),
            nn.InstanceNorm2d(64, affine=True),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1),
            nn.InstanceNorm2d(128, affine=True),
            nn.ReLU(),
            nn.Conv2d(128, 256, 3, stride=2, padding=1),
            nn.InstanceNorm2d(256, affine=True),
            nn.ReLU(),
        ]
        layers += [_ResnetBlock(256) for _ in range(blocks)]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        out = image
        for index, layer in enumerate(self.model):
            out = layer(out)
            if index in self.TAPS:
                taps.append(out)
        return taps


def build_encoder(seed: int, pretrained: str | None) -> _Encoder:
    torch.manual_seed(seed)
    encoder = _Encoder()
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_normal_(module.weight, gain=0.02)
            nn.init.zeros_(module.bias)
    if pretrained:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        own = encoder.state_dict()
        encoder.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    return encoder.eval()


def load_photo(name: str, size: int = 256) -> torch.Tensor:
    import skimage.data

    image = torch.from_numpy(getattr(skimage.data, name)()).float() / 127.5 - 1.0  # (H, W, 3) in [-1, 1]
    image = image.permute(2, 0, 1)[None]  # (1, 3, H, W)
    side = min(image.shape[-2:])
    image = image[..., :side, :side]
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def translate_colours(image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A structure-preserving "translation": gamma, channel mixing and a little noise."""
    mix = torch.eye(3) * 0.6 + 0.4 * torch.rand(3, 3, generator=g)  # (3, 3)
    mix = mix / mix.sum(dim=1, keepdim=True)
    out = ((image + 1) / 2).clamp_min(0).pow(0.7)
    out = torch.einsum("oc,bchw->bohw", mix, out) * 2 - 1
    return (out + 0.05 * torch.randn(out.shape, generator=g)).clamp(-1, 1)


def sample_embeddings(
    taps: list[torch.Tensor], heads: list[nn.Module], locations: list[torch.Tensor]
) -> list[torch.Tensor]:
    out = []
    for feature, head, index in zip(taps, heads, locations):
        flat = feature.flatten(2)[0].t()  # (H W, C)
        out.append(F.normalize(head(flat[index]), dim=1))  # (n, 256)
    return out


def image_levels(seed: int, pretrained: str | None) -> dict[str, dict[str, list[torch.Tensor]]]:
    """{'x': taps, level: taps} for one draw: photo pair, locations, random MLP heads (and random encoder)."""
    g = torch.Generator().manual_seed(seed)
    names = [PHOTOS[i] for i in torch.randperm(len(PHOTOS), generator=g)[:2]]
    photo, other = load_photo(names[0]), load_photo(names[1])
    encoder = build_encoder(seed if not pretrained else 0, pretrained)
    torch.manual_seed(1000 + seed)
    heads = [nn.Sequential(nn.Linear(c, 256), nn.ReLU(), nn.Linear(256, 256)) for c in _Encoder.TAP_CHANNELS]
    for head in heads:
        for module in head:
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight, gain=0.02)
                nn.init.zeros_(module.bias)
    with torch.no_grad():
        # As CUT's PatchSampleF: NUM_SAMPLES random locations per tap, the same for both images.
        sizes = [t.shape[-1] * t.shape[-2] for t in encoder(photo)]
        locations = [torch.randperm(size, generator=g)[:NUM_SAMPLES] for size in sizes]
        shuffle = torch.randperm(NUM_SAMPLES, generator=g)
        shuffled = [index[shuffle] for index in locations]
        images = {
            "x": (photo, locations),
            "independent": (other, shuffled),
            "mix=0.2": (0.2 * photo + 0.8 * other, locations),
            "mix=0.5": (0.5 * photo + 0.5 * other, locations),
            "mix=0.8": (0.8 * photo + 0.2 * other, locations),
            "translated": (translate_colours(photo, g), locations),
        }
        return {
            level: sample_embeddings(encoder(image), heads, index) for level, (image, index) in images.items()
        }


# ----------------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------------


def paired_z(low: np.ndarray, high: np.ndarray) -> float:
    """mean(high - low) / std(high - low) over draws (same image, locations and encoder in both)."""
    diff = high - low
    return float(diff.mean() / (diff.std(ddof=1) + 1e-12))


def summarise(values: dict[str, list[float]], order: list[str]) -> dict:
    arrays = {k: np.asarray(v) for k, v in values.items()}
    steps = [paired_z(arrays[lo], arrays[hi]) for lo, hi in zip(order[:-1], order[1:])]
    return {
        "means": {k: float(v.mean()) for k, v in arrays.items()},
        "stds": {k: float(v.std(ddof=1)) for k, v in arrays.items()},
        "z_weak": steps[0],
        "z_steps": steps,
        "min_step_z": float(min(steps)),
        "monotone": bool(all(arrays[hi].mean() > arrays[lo].mean() for lo, hi in zip(order[:-1], order[1:]))),
    }


# ----------------------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------------------


def collect(seeds: int, pretrained: str | None) -> dict[str, list[dict[str, list[torch.Tensor]]]]:
    """Families -> list over seeds of {level: list of (n, d) tensors, one per tap}."""
    data: dict[str, list] = {"iso-linear": [], "iso-nonlinear": [], "image": []}
    for seed in range(seeds):
        for family, levels in isotropic_levels(seed).items():
            data[family].append({k: [v] for k, v in levels.items()})
        data["image"].append(image_levels(seed, pretrained))
    return data


def levels_of(family: str) -> list[str]:
    """Levels in increasing dependence (the image family's 'translated' level is reported, not ordered)."""
    if family == "image":
        return ["independent", "mix=0.2", "mix=0.5", "mix=0.8"]
    return ["a=0.0", "a=0.2", "a=0.4", "a=0.6", "a=0.8"]


def median_sigma(samples: torch.Tensor) -> float:
    return float(_median_bandwidth(samples[None])[0])


def part_rsmi(data: dict, log: dict) -> None:
    print("\n## rsmi: sigma scale x lambda (n = 256, d = 256, float32; mean over taps, paired z over draws)")
    print(
        "family | scale | lambda | means per level (+ translated) | z_weak | min step z | monotone taps | "
        "grad norm"
    )
    medians = {
        family: [{level: [median_sigma(t) for t in taps] for level, taps in draw.items()} for draw in draws]
        for family, draws in data.items()
    }
    table = []
    for scale in SIGMA_SCALES:
        for lam in LAMBDAS:
            for family, draws in data.items():
                order = levels_of(family)
                reported = [*order, "translated"] if family == "image" else order
                num_taps = len(draws[0]["x"])
                per_tap, grad_norms, f64_error = [], [], 0.0
                for tap in range(num_taps):
                    values: dict[str, list[float]] = {k: [] for k in reported}
                    for index, draw in enumerate(draws):
                        x = draw["x"][tap]
                        sigma_x = scale * medians[family][index]["x"][tap]
                        for level in reported:
                            y = draw[level][tap]
                            sigma_y = scale * medians[family][index][level][tap]
                            if level == order[1] and index < 3:
                                y = y.clone().requires_grad_(True)
                                value = rsmi(x, y, sigma_x, sigma_y, lam=lam)
                                value.backward()
                                grad_norms.append(float(y.grad.norm()))
                                y = y.detach()
                                value64 = rsmi(x.double(), y.double(), sigma_x, sigma_y, lam=lam)
                                f64_error = max(f64_error, abs(float(value64) - float(value.detach())))
                            else:
                                value = rsmi(x, y, sigma_x, sigma_y, lam=lam)
                            values[level].append(float(value))
                    per_tap.append(summarise(values, order))
                row = {
                    "family": family,
                    "scale": scale,
                    "lambda": lam,
                    "means": {k: float(np.mean([t["means"][k] for t in per_tap])) for k in reported},
                    "std_independent": float(np.mean([t["stds"][order[0]] for t in per_tap])),
                    "z_weak": float(np.mean([t["z_weak"] for t in per_tap])),
                    "min_step_z": float(np.mean([t["min_step_z"] for t in per_tap])),
                    "monotone_taps": int(sum(t["monotone"] for t in per_tap)),
                    "num_taps": num_taps,
                    "grad_norm_weak": float(np.mean(grad_norms)),
                    "f32_f64_max_abs": f64_error,
                    "per_tap": per_tap,
                }
                table.append(row)
                means = " ".join(f"{v:+.4f}" for v in row["means"].values())
                print(
                    f"{family} | {scale} | {lam:g} | {means} | {row['z_weak']:.1f} | "
                    f"{row['min_step_z']:.1f} | {row['monotone_taps']}/{num_taps} | "
                    f"{row['grad_norm_weak']:.2e} | f32-f64 {f64_error:.1e}",
                    flush=True,
                )
    log["rsmi_grid_search"] = table


def part_gradients(data: dict, log: dict) -> None:
    """Gradient health at the defaults: finite, magnitude, float32 vs float64 agreement."""
    print("\n## rsmi gradients at the defaults (per tap, image family, 'mix=0.5')")
    rows = []
    for draw in data["image"][:3]:
        for tap, (x, y) in enumerate(zip(draw["x"], draw["mix=0.5"])):
            y32 = y.clone().requires_grad_(True)
            rsmi(x, y32).backward()
            y64 = y.double().clone().requires_grad_(True)
            rsmi(x.double(), y64).backward()
            rel = float((y32.grad.double() - y64.grad).norm() / y64.grad.norm())
            rows.append(
                {
                    "tap": tap,
                    "grad_norm": float(y32.grad.norm()),
                    "finite": bool(torch.isfinite(y32.grad).all()),
                    "rel_err_f32": rel,
                }
            )
    for row in rows:
        print(row)
    log["gradients"] = rows


def part_centres(data: dict, log: dict) -> None:
    """How well a random subset of centres approximates the full estimator (image family, all taps)."""
    print("\n## rsmi with num_centers < n vs all n = 256 centres (image family, defaults)")
    rows = []
    for centres in (32, 64, 128):
        for level in ("independent", "mix=0.2", "mix=0.8"):
            full, subset = [], []
            for index, draw in enumerate(data["image"]):
                for x, y in zip(draw["x"], draw[level]):
                    full.append(float(rsmi(x, y)))
                    generator = torch.Generator().manual_seed(index)
                    subset.append(float(rsmi(x, y, num_centers=centres, generator=generator)))
            full_a, subset_a = np.asarray(full), np.asarray(subset)
            row = {
                "num_centers": centres,
                "level": level,
                "mean_full": float(full_a.mean()),
                "mean_subset": float(subset_a.mean()),
                "mean_abs_diff": float(np.abs(full_a - subset_a).mean()),
            }
            rows.append(row)
            print(row)
    log["centres"] = rows


def part_reversed(data: dict, log: dict) -> None:
    """Joint-as-numerator vs the reversed arrangement with the same centres (the joint samples)."""
    print("\n## numerator choice with centres at the joint samples (defaults, mean over taps and draws)")
    out = {}
    for family in ("iso-linear", "image"):
        order = levels_of(family)
        joint, reverse = {k: [] for k in order}, {k: [] for k in order}
        for draw in data[family]:
            for tap in range(len(draw["x"])):
                x = draw["x"][tap][None]
                for level in order:
                    y = draw[level][tap][None]
                    joint[level].append(float(rsmi(x, y)))
                    k = _gaussian_features(x, x, _bandwidth(x, None, "x"))  # (1, n, n)
                    l_ = _gaussian_features(y, y, _bandwidth(y, None, "y"))  # (1, n, n)
                    n = x.shape[1]
                    h_product = (k.sum(-1) * l_.sum(-1)) / n**2  # (1, n)
                    second_product = (
                        torch.bmm(k, k.transpose(1, 2)) * torch.bmm(l_, l_.transpose(1, 2)) / n**2
                    )
                    joint_features = k * l_
                    second_joint = torch.bmm(joint_features, joint_features.transpose(1, 2)) / n
                    value, _ = _rulsif_from_moments(
                        h_product, second_product, second_joint, RSMI_DEFAULT_LAMBDA, 0.5
                    )
                    reverse[level].append(float(value))
        out[family] = {
            "joint_numerator": {k: float(np.mean(v)) for k, v in joint.items()},
            "product_numerator": {k: float(np.mean(v)) for k, v in reverse.items()},
        }
        print(family, json.dumps(out[family], indent=None))
    log["numerator_choice"] = out


def part_grid(data: dict, log: dict) -> None:
    """rsmi_grid (scalar pairs, 9 x 9 grid) against rsmi on the same draws; the grid is slow, so a subset."""
    print("\n## rsmi_grid vs rsmi (first 5 draws; image taps 1 and 4; iso-linear at the default sigma only)")
    from semst.losses.structure_texture import RSMI_GRID_LAMBDA, RSMI_GRID_SIGMA

    rows = []
    settings = [
        ("rsmi", None, "image"),
        ("rsmi", None, "iso-linear"),
        ("grid", RSMI_GRID_SIGMA, "iso-linear"),
    ]
    settings += [("grid", sigma, "image") for sigma in GRID_SIGMAS]
    for estimator, sigma, family in settings:
        order = levels_of(family)
        taps = (1, 4) if family == "image" else (0,)
        per_tap = []
        for tap in taps:
            values = {k: [] for k in order}
            for draw in data[family][:5]:
                for level in order:
                    x, y = draw["x"][tap], draw[level][tap]
                    value = rsmi(x, y) if estimator == "rsmi" else rsmi_grid(x, y, sigma=sigma)
                    values[level].append(float(value))
            per_tap.append(summarise(values, order))
        row = {
            "estimator": estimator,
            "sigma": sigma,
            "lambda": RSMI_GRID_LAMBDA if estimator == "grid" else RSMI_DEFAULT_LAMBDA,
            "family": family,
            "means": {k: float(np.mean([t["means"][k] for t in per_tap])) for k in order},
            "z_weak": float(np.mean([t["z_weak"] for t in per_tap])),
            "min_step_z": float(np.mean([t["min_step_z"] for t in per_tap])),
            "monotone_taps": int(sum(t["monotone"] for t in per_tap)),
        }
        rows.append(row)
        means = " ".join(f"{v:+.4f}" for v in row["means"].values())
        print(
            f"{estimator} | sigma {sigma} | {family} | {means} | z_weak {row['z_weak']:.1f} | "
            f"min step z {row['min_step_z']:.1f} | monotone {row['monotone_taps']}/{len(per_tap)}",
            flush=True,
        )
    log["grid"] = rows


def part_timing(log: dict) -> None:
    print("\n## run time (forward + backward, float32, --threads CPU threads; machine shared, so noisy)")
    g = torch.Generator().manual_seed(0)
    rows = []
    for batch in (1, 4):
        x = F.normalize(torch.randn(batch, NUM_SAMPLES, DIM, generator=g), dim=-1)
        y = F.normalize(x + torch.randn(batch, NUM_SAMPLES, DIM, generator=g), dim=-1)
        for name, fn in (
            ("rsmi (b = n = 256)", lambda a, b: rsmi(a, b)),
            (
                "rsmi (num_centers = 64)",
                lambda a, b: rsmi(a, b, num_centers=64, generator=torch.Generator().manual_seed(0)),
            ),
            ("rsmi_grid (81 basis, 65536 pairs)", lambda a, b: rsmi_grid(a, b)),
            ("hdce_loss", lambda a, b: hdce_loss(b, a)),
        ):
            times = []
            for _ in range(13):  # 3 warm-up calls, then 10 timed ones
                yy = y.clone().requires_grad_(True)
                start = time.perf_counter()
                fn(x, yy).sum().backward()
                times.append(time.perf_counter() - start)
            median, best = 1000 * float(np.median(times[3:])), 1000 * float(np.min(times[3:]))
            rows.append({"estimator": name, "batch": batch, "median_ms": median, "min_ms": best})
            print(f"{name} | B = {batch} | median {median:.1f} ms | min {best:.1f} ms")
    log["timing"] = rows


def part_hdce(data: dict, log: dict) -> None:
    """Effective sample size of the hardness weights and of the loss's softmax over negatives."""
    print("\n## hDCE: effective number of negatives / (P - 1), image family (mean over taps and draws)")
    rows = []
    tau = 0.07
    for weighting, betas in (("importance", BETAS), ("src", (0.0, 0.02, 0.05, 0.1, 1.0))):
        for beta in betas:
            ess_w, ess_p = [], []
            for draw in data["image"]:
                for key, query in zip(draw["x"], draw["translated"]):
                    num_neg = key.shape[0] - 1
                    w = hdce_negative_weights(key, beta=beta, weighting=weighting)  # (P, P)
                    ess_w.append(float(((w.sum(1) ** 2) / w.square().sum(1)).mean()) / num_neg)
                    s = query @ key.t() / tau  # (P, P)
                    off = ~torch.eye(key.shape[0], dtype=torch.bool)
                    if weighting == "importance":
                        logits = (s + torch.log(w)).masked_fill(~off, float("-inf"))
                    else:
                        logits = (w * s).masked_fill(~off, float("-inf"))
                    p = torch.softmax(logits, dim=1)
                    ess_p.append(float((1.0 / p.square().sum(1)).mean()) / num_neg)
            row = {
                "weighting": weighting,
                "beta": beta,
                "ess_weights": float(np.mean(ess_w)),
                "ess_softmax": float(np.mean(ess_p)),
            }
            rows.append(row)
            print(
                f"{weighting} | beta {beta} | ESS(w)/(P-1) {row['ess_weights']:.3f} | "
                f"ESS(loss softmax)/(P-1) {row['ess_softmax']:.3f}"
            )
    sims = []
    for draw in data["image"]:
        for key in draw["x"]:
            g = key @ key.t()
            sims.append(g[~torch.eye(key.shape[0], dtype=torch.bool)])
    sims_all = torch.cat(sims)
    stats = {
        "mean": float(sims_all.mean()),
        "std": float(sims_all.std()),
        "q05": float(sims_all.quantile(0.05)),
        "q95": float(sims_all.quantile(0.95)),
    }
    print("key-key cosine similarity (image family):", stats)
    log["hdce"] = {"rows": rows, "key_similarity": stats}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--part",
        choices=("all", "rsmi", "defaults", "grid", "hdce", "timing"),
        default="all",
        help="rsmi = sigma/lambda search + 'defaults'; defaults = gradients, centre subsets and numerator "
        "choice at the defaults",
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--pretrained", default=None, help="state dict of a trained CycleGAN ResNet generator"
    )
    parser.add_argument("--out", default=None, help="write all numbers as JSON here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default=None, help="save/load the generated embeddings here (.pt)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log: dict = {"args": vars(args)}
    start = time.perf_counter()
    if args.part in ("all", "timing"):
        part_timing(log)
    if args.part != "timing":
        if args.cache and os.path.exists(args.cache):
            data = torch.load(args.cache)
        else:
            data = collect(args.seeds, args.pretrained)
            if args.cache:
                torch.save(data, args.cache)
        print(f"\n(data: {time.perf_counter() - start:.0f} s)")
        if args.part in ("all", "rsmi"):
            part_rsmi(data, log)
        if args.part in ("all", "rsmi", "defaults"):
            part_gradients(data, log)
            part_centres(data, log)
            part_reversed(data, log)
        if args.part in ("all", "grid"):
            part_grid(data, log)
        if args.part in ("all", "hdce"):
            part_hdce(data, log)
    print(f"\n(total: {time.perf_counter() - start:.0f} s)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(log, f, indent=1)


if __name__ == "__main__":
    main()
