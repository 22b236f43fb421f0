"""Options that many subcommands share, each added by one function so that its flag and help are the same
everywhere: ``-v/--verbose`` (:func:`add_verbosity`), ``--no-progress`` (:func:`add_progress`) and
``--device`` (:func:`add_device`), ``--weights`` (:func:`add_weights`), and the tiling options of the commands that translate large images
and precision of the commands that translate large images (:func:`add_tiling`, read back with
:func:`tiling_from_args`).

A subcommand calls them in ``add_parser`` where it wants the options to appear in its ``--help``::

    add_device(p)
    add_progress(p)
    add_verbosity(p)

and reads ``args.verbose`` (``semst.cli.main`` does, to configure logging), ``args.no_progress`` and
``args.device``.
"""

from __future__ import annotations

import argparse

__all__ = [
    "DEVICE_HELP",
    "VERBOSE_HELP",
    "add_device",
    "add_progress",
    "add_tiling",
    "add_verbosity",
    "add_weights",
    "tiling_from_args",
]

DEVICE_HELP = "auto, cpu, cuda or cuda:N"
"""What ``--device`` accepts (``auto``: CUDA if available, else the CPU; ``semst.runtime.resolve_device``)."""


VERBOSE_HELP = "debug logging, and the full traceback of an error"
"""What ``-v`` does; without it an error is one line (`semst.cli.main`)."""


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """Adds ``-v/--verbose`` (``args.verbose``): debug logging, and the traceback of an error."""
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)


def add_progress(parser: argparse.ArgumentParser, *, help: str = "no progress bar") -> None:
    """Adds ``--no-progress`` (``args.no_progress``).

    Args:
        parser: The subcommand's parser.
        help: The help text, for commands with several bars or extra output ("no progress bars").
    """
    parser.add_argument("--no-progress", action="store_true", help=help)


def add_device(
    parser: argparse.ArgumentParser,
    *,
    default: str | None = "auto",
    help: str = DEVICE_HELP,
    metavar: str | None = None,
) -> None:
    """Adds ``--device`` (``args.device``).

    Args:
        parser: The subcommand's parser.
        default: The device when the option is not given; ``None`` where a config supplies it (then say so in
            ``help``, e.g. ``f"{DEVICE_HELP} (default: train.device)"``).
        help: The help text.
        metavar: The placeholder in the usage line (argparse's default: ``DEVICE``).
    """
    parser.add_argument("--device", default=default, metavar=metavar, help=help)


def add_weights(parser: argparse.ArgumentParser) -> None:
    """Adds ``--weights`` (``args.weights``): which of a training checkpoint's weights to load
    (`semst.translators.Translator.from_checkpoint`)."""
    parser.add_argument(
        "--weights",
        choices=("average", "last"),
        default="average",
        help="which weights of the checkpoint: the run's weight average where it kept one (train.ema_std > 0; "
        "otherwise the last step's), or the last step's",
    )


def add_tiling(p: argparse.ArgumentParser) -> None:
    """--tile, --tile-overlap, --tile-batch, --global-window, --width, --margin, --precision
    (semst.tiling.Tiling)."""
    group = p.add_argument_group("tiling and precision (memory-bounded translation of large images)")
    group.add_argument(
        "--tile",
        type=int,
        metavar="PX",
        help="translate in overlapping tiles of at most PX x PX pixels (shaped to cover the image with the "
        "least overlap) so that memory does not grow with the image size "
        "(default: multi-scale models tile their local generator with max(512, multiscale.local_size); "
        "single-scale models translate the whole image at once, as tiles change instance-norm "
        "statistics slightly, up to 2048x2048 pixels, and larger images in 1024 px tiles with a 256 px "
        "overlap; a PX at least the image's longest side gives one whole-image pass)",
    )
    group.add_argument(
        "--tile-overlap",
        type=int,
        metavar="PX",
        help="pixels neighbouring tiles share at least, blended with linear ramps (default: a quarter of "
        "the tile for multi-scale models, 64 otherwise)",
    )
    group.add_argument(
        "--tile-batch",
        type=int,
        metavar="N",
        help="tiles (and multi-scale global windows) translated at once; raise it on a GPU (default: 1 for "
        "multi-scale, 4 for single-scale)",
    )
    group.add_argument(
        "--global-window",
        type=int,
        metavar="PX",
        help="multi-scale models: the global generator sees the whole downsampled image if it has at most "
        "PX x PX pixels, else overlapping windows of at most that many (default: 2 x multiscale.global_size)",
    )
    group.add_argument(
        "--width",
        type=int,
        metavar="PX",
        help="translate at this image width (aspect kept; the result is resized back to the input's size); "
        "0 = at the input's own size (default: the width the model trained at when its training images "
        "were resized to one, multiscale.image_width or CUT's scale_width, else 0)",
    )
    group.add_argument(
        "--margin",
        type=int,
        metavar="PX",
        help="add PX pixels of mirrored image on every side before translating and cut them off after, so "
        "that the generators' border artefacts fall outside the image (default: 0)",
    )
    group.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="autocast precision of the networks' passes: fp32 (default), bf16, or fp16 (CUDA only); outputs "
        "are blended in float32 either way. bf16/fp16 outputs differ slightly from fp32's (docs/benchmarks.md)",
    )


TILING_FLAGS = {
    "tile": "--tile",
    "overlap": "--tile-overlap",
    "batch": "--tile-batch",
    "global_window": "--global-window",
    "width": "--width",
    "margin": "--margin",
    "precision": "--precision",
}


def tiling_from_args(translator, args: argparse.Namespace):
    """The translator's default tiling with the options given; impossible settings are refused, naming the
    option, before any image is read (fp16 off CUDA among them)."""
    if args.global_window is not None and translator.kind != "multi-scale":
        raise ValueError(
            f"--global-window: {translator.checkpoint_path} is a single-scale model (one generator)"
        )
    try:
        tiling = translator.tiling(
            tile=args.tile,
            overlap=args.tile_overlap,
            batch=args.tile_batch,
            global_window=args.global_window,
            width=args.width,
            margin=args.margin,
            precision=args.precision,
        )
    except ValueError as exc:
        message = str(exc)
        for field, flag in TILING_FLAGS.items():
            if message.startswith(f"tiling: {field} "):
                raise ValueError(flag + message[len(f"tiling: {field}") :]) from None
        raise
    if tiling.precision == "fp16" and translator.device.type != "cuda":
        raise ValueError(
            f"--precision fp16 needs a CUDA device, but the translator runs on {translator.device.type}; "
            "use bf16 or fp32"
        )
    return tiling
