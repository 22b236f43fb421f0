"""``semst study``: train translator variants over seeds and score every result on distortion and realism."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from semst.cli.formatting import HelpFormatter
from semst.cli.options import add_progress, add_verbosity

HELP = "compare translator variants over seeds: semantic distortion beside realism, as a table and report"


def _shard(text: str) -> tuple[int, int]:
    index, slash, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/3, got {text!r}") from None
    if not slash or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return shard


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: a count (``3`` = seeds 0, 1, 2) or comma-separated seeds (``0,1,5``; ``0,`` is seed 0)."""
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise ValueError
            return tuple(range(count))
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
        if not seeds or min(seeds) < 0:
            raise ValueError
        return seeds
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (3) or a list of seeds (0,1,5), got {text!r}"
        ) from None


def add_parser(subparsers) -> None:
    from semst.study.variants import SCALES, VARIANT_SETS, VARIANTS

    p = subparsers.add_parser(
        "study",
        help=HELP,
        description=HELP + ". Every run resumes; runs can be spread over processes (--jobs) and machines "
        "(--shard, then `semst study merge`). See docs/study.md.",
        formatter_class=HelpFormatter,
    )
    commands = p.add_subparsers(dest="study_command", metavar="STEP", required=True)

    run = commands.add_parser(
        "run",
        help="train, translate and score every variant and seed (resumes), then write the report",
        description="Train, translate and score every variant and seed, then write STUDY/report.html and "
        "STUDY/results.json. Run it again to resume; run it with more --variants or --seeds to extend the study.",
        formatter_class=HelpFormatter,
    )
    run.add_argument(
        "study", metavar="STUDY", help="the study folder (created, or resumed if it holds study.json)"
    )
    data = run.add_argument_group("data (needed when the study is created)")
    data.add_argument(
        "--data",
        metavar="ROOT",
        help="labelled data: world:PATH (a `semst world` folder), or a folder with trainA/, trainB/, "
        "testA/ + testA_labels/, testB/ + testB_labels/",
    )
    data.add_argument(
        "--source", metavar="NAME:PATH", help="a source data set as downloaded, e.g. gta5:/data/GTA5"
    )
    data.add_argument(
        "--target", metavar="NAME:PATH", help="a target data set, e.g. cityscapes:/data/cityscapes"
    )
    data.add_argument("--source-test-split", metavar="SPLIT", help="held-out split of --source (labelled)")
    data.add_argument(
        "--target-test-split", metavar="SPLIT", default="val", help="held-out split of --target"
    )
    data.add_argument(
        "--segmenter",
        metavar="FILE",
        help="a target-domain segmenter (semst, TorchScript or ONNX; see semst evaluate segmentation); "
        "default: the study trains one on the labelled target training images",
    )
    data.add_argument(
        "--segmenter-photometric",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the segmenter the study trains learns with colour augmentation (brightness, contrast, "
        "saturation, hue), so that distortion is read from the classes, not the palette: the default for "
        "a new study; --no-segmenter-photometric trains it without (what studies whose study.json does not "
        "name the setting did) (docs/study.md)",
    )
    what = run.add_argument_group("what is compared")
    sets = "; ".join(f"{name}: {', '.join(members)}" for name, members in VARIANT_SETS.items())
    what.add_argument(
        "--variants",
        default=None,
        metavar="SET_OR_NAMES",
        help=f"a set ({sets}) or comma-separated names of: {', '.join(VARIANTS)} (default: demo for a new "
        "study; a study being extended keeps its variants and adds these)",
    )
    what.add_argument(
        "--variants-file",
        metavar="YAML",
        help="more variants: a list under 'variants:' of name, preset, overrides (dotted keys), description, "
        "and optionally tiling and weights (average or last) of the held-out translations",
    )
    what.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help="a count (3 = seeds 0, 1, 2) or a list (default: 3 for a new study; a study being extended keeps "
        "its seeds and adds these)",
    )
    what.add_argument(
        "--scale",
        default=None,
        choices=list(SCALES),
        help="size of every run (docs/study.md) (default: demo; a study keeps its own)",
    )
    what.add_argument(
        "--baseline",
        default=None,
        help="the variant compared with (default: CUT if listed, else the last; a study being extended keeps "
        "its own)",
    )
    what.add_argument(
        "--title", default=None, help="the report's title (a study being extended keeps its own)"
    )
    how = run.add_argument_group("how it runs")
    how.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs in parallel worker processes, each with its share of the CPU threads; with several GPUs "
        "each worker gets one in turn, and runs sharing a GPU want NVIDIA's MPS (docs/study.md)",
    )
    how.add_argument(
        "--shard", type=_shard, default=(0, 1), metavar="I/N", help="only every N-th run, from the I-th"
    )
    how.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    add_progress(run, help="no progress bars")
    add_verbosity(run)

    report = commands.add_parser(
        "report",
        help="write STUDY/report.html and results.json from what is scored",
        formatter_class=HelpFormatter,
    )
    report.add_argument("study", metavar="STUDY")
    report.add_argument(
        "--pictures", type=int, default=2, metavar="N", help="held-out images drawn per variant"
    )
    report.add_argument(
        "--every-seed",
        action="store_true",
        help="draw every seed's translation of those images (default: each variant's lowest seed)",
    )
    add_verbosity(report)

    table = commands.add_parser(
        "table",
        help="print the scores as a Markdown table (mean ± std over seeds, differences from the baseline)",
        formatter_class=HelpFormatter,
    )
    table.add_argument("study", metavar="STUDY")
    table.add_argument("--variants", metavar="NAMES", help="comma-separated variants to show (default: all)")
    table.add_argument("--baseline", metavar="NAME", help="compare with this variant (default: the study's)")
    table.add_argument(
        "--per-seed", action="store_true", help="add a table of every seed's own scores, variant by variant"
    )
    add_verbosity(table)

    merge = commands.add_parser(
        "merge",
        help="bring the scored runs of copies of a study (shards run elsewhere) into one",
        formatter_class=HelpFormatter,
    )
    merge.add_argument("study", metavar="STUDY", help="the study to merge into")
    merge.add_argument("others", metavar="OTHER", nargs="+", help="study folders whose runs are copied in")
    add_verbosity(merge)

    listing = commands.add_parser("variants", help="list the built-in variants, sets and scales")
    add_verbosity(listing)


def _spec(args: argparse.Namespace):
    from semst.study.data import StudyData, open_study_data
    from semst.study.runner import STUDY_FILE, StudySpec, default_segmenter_photometric
    from semst.study.variants import SCALES, read_variants_file, resolve_variants

    if args.segmenter and args.segmenter_photometric:
        raise ValueError(
            "--segmenter-photometric applies to the segmenter a study trains itself, not to a given one "
            f"({args.segmenter}): train that one with `semst segmenter train --photometric`"
        )
    if args.data and (args.source or args.target):
        raise ValueError("give either --data or --source/--target, not both")
    if args.data:
        data = open_study_data(args.data)
    elif args.source and args.target:
        if not args.source_test_split:
            raise ValueError("--source-test-split: name the labelled held-out split of the source data set")
        data = StudyData.from_datasets(
            args.source,
            args.target,
            source_test_split=args.source_test_split,
            target_test_split=args.target_test_split,
        )
    else:
        return None
    extra = read_variants_file(args.variants_file) if args.variants_file else None
    variants = resolve_variants(args.variants or "demo", extra)
    names = [v.name for v in variants]
    baseline = "CUT" if "CUT" in names else names[-1]
    if args.baseline in names or (args.baseline and not (Path(args.study) / STUDY_FILE).is_file()):
        baseline = args.baseline  # a new study's --baseline must be one of its variants (checked here)
    return StudySpec(
        data=data.spec,
        segmenter=str(Path(args.segmenter).resolve()) if args.segmenter else "",
        variants=tuple(variants),
        seeds=tuple(args.seeds or (0, 1, 2)),
        scale=SCALES[args.scale or "demo"],
        baseline=baseline,
        title=args.title or f"semst study: {', '.join(names)}",
        segmenter_photometric=(
            default_segmenter_photometric(args.study)
            if args.segmenter_photometric is None
            else args.segmenter_photometric
        ),
    )


def _extension(args: argparse.Namespace, spec):
    """The variants, seeds and scale the command line asks of an existing study (run without --data), as a
    spec over that study's data, or None when it asks for none."""
    from semst.study.variants import SCALES, read_variants_file, resolve_variants

    if not (
        args.variants
        or args.variants_file
        or args.seeds
        or args.scale
        or args.segmenter
        or args.segmenter_photometric is not None
    ):
        return None
    extra = read_variants_file(args.variants_file) if args.variants_file else None
    if args.variants:
        variants = tuple(resolve_variants(args.variants, extra))
    elif extra:
        variants = tuple(extra.values())
    else:
        variants = spec.variants
    names = [v.name for v in variants]
    return replace(
        spec,
        variants=variants,
        baseline=spec.baseline if spec.baseline in names else names[-1],  # extending keeps the study's own
        seeds=tuple(args.seeds or spec.seeds),
        scale=SCALES[args.scale] if args.scale else spec.scale,
        segmenter=str(Path(args.segmenter).resolve()) if args.segmenter else spec.segmenter,
        segmenter_photometric=(
            spec.segmenter_photometric if args.segmenter_photometric is None else args.segmenter_photometric
        ),
    )


def run(args: argparse.Namespace) -> int:
    from semst.study.report import write_study_report
    from semst.study.runner import STUDY_FILE, Study, merge_studies

    if args.study_command == "variants":
        from semst.study.variants import SCALES, VARIANT_SETS, VARIANTS

        for variant in VARIANTS.values():
            how = {
                **variant.overrides,
                **({"weights": variant.weights} if variant.weights != "average" else {}),
            }
            print(f"{variant.name:20s} {variant.preset:8s} {how or ''}  {variant.description}")
        print()
        for name, members in VARIANT_SETS.items():
            print(f"set {name:10s} {', '.join(members)}")
        print()
        for scale in SCALES.values():
            print(
                f"scale {scale.name:6s} {scale.steps} steps, {scale.crop} px crops, {scale.base_channels} channels"
            )
        return 0
    if args.study_command == "merge":
        added = merge_studies(args.study, args.others)
        print(
            f"merged {len(added)} run(s) into {args.study}: " + ", ".join(f"{v} seed {s}" for v, s in added)
        )
        return 0
    if args.study_command == "table":
        from semst.study.report import markdown_table, summarize_scores

        study = Study.open(args.study)
        results = study.results()
        if args.baseline:
            if args.baseline not in [v.name for v in study.spec.variants]:
                raise ValueError(f"--baseline {args.baseline} is not a variant of {args.study}")
            results["spec"]["baseline"] = args.baseline
        metrics, summary = summarize_scores(results)  # the stored scores alone: no data, no checkpoints
        variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
        print(markdown_table(summary, metrics, variants, per_seed=args.per_seed), end="")
        return 0
    if args.study_command == "report":
        paths = write_study_report(Study.open(args.study), pictures=args.pictures, every_seed=args.every_seed)
        print(f"report {paths['report']}\nresults {paths['results']}")
        return 0

    spec = _spec(args)
    if spec is None:
        if not (Path(args.study) / STUDY_FILE).is_file():
            raise ValueError(
                f"{args.study} holds no study yet: name its data with --data or --source/--target"
            )
        study = Study.open(args.study)
        extension = _extension(args, study.spec)
        if extension is not None:  # more variants or seeds for the study's own data
            study = Study.create(args.study, extension)
    else:
        study = Study.create(args.study, spec)
    study = study.relabel(baseline=args.baseline, title=args.title)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    study.run(shard=args.shard, jobs=args.jobs, progress=not args.no_progress)
    remaining = study.pending()
    if not args.no_report:
        paths = write_study_report(study)
        print(f"report {paths['report']}")
    if remaining:
        print(
            f"{len(remaining)} run(s) of the study are not scored yet (other shards, or run again to resume)"
        )
    return 0
