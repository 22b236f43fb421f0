"""`refine_dataset` shared among processes (``shards``), simulated in one process: one thread per rank, objects
exchanged through pickle as torch.distributed does. The merged report and manifest equal a single process's;
the torchrun runs themselves are in tests/cli/test_torchrun.py."""

from __future__ import annotations

import json
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from semst.refine import QualityGate, RefineError, refine_dataset
from semst.runtime import Distributed
from semst.translators import Translator

from .test_refine_quality import _Rows, _sky_over_road


class _Hub:
    """Where the threads of a simulated job meet: every call of a collective is one exchange."""

    def __init__(self, world_size: int) -> None:
        self.barrier = threading.Barrier(world_size, timeout=120)
        self.slots: list[Any] = [None] * world_size

    def exchange(self, rank: int, value: Any) -> list[Any]:
        self.slots[rank] = pickle.dumps(value)  # what crosses a process boundary must pickle
        self.barrier.wait()
        gathered = [pickle.loads(slot) for slot in self.slots]
        self.barrier.wait()
        return gathered


@dataclass(frozen=True)
class _Thread(Distributed):
    hub: Any = None

    def all_gather_object(self, value):
        return self.hub.exchange(self.rank, value)

    def broadcast_object(self, value, source=0):
        return self.hub.exchange(self.rank, value)[source]


def _run_job(world_size: int, **kwargs) -> list:
    """``refine_dataset(**kwargs)`` by ``world_size`` simulated processes; their reports (or errors)."""
    hub = _Hub(world_size)
    results: list[Any] = [None] * world_size

    def run(rank: int) -> None:
        try:
            results[rank] = refine_dataset(**kwargs, shards=_Thread(rank, world_size, hub=hub))
        except Exception as exc:  # noqa: BLE001 - returned to the test
            results[rank] = exc

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def _without_times_and_ranks(manifest: dict) -> dict:
    manifest = {k: v for k, v in manifest.items() if k not in ("started", "finished", "processes")}
    manifest["outputs"] = {
        name: {k: v for k, v in record.items() if k not in ("mtime_ns", "rank")}
        for name, record in manifest["outputs"].items()
    }
    return manifest


@pytest.fixture
def model(make_config):
    torch.manual_seed(0)
    return Translator.from_config(make_config("semst")).eval()


def _awkward_data_set(root: Path):
    """Nine frames of sky over road (pixel accuracy 1 - rows / 29 under a road-only segmenter), one with a
    label map of the wrong size and one whose image cannot be decoded."""
    samples = _sky_over_road(root, [2, 6, 10, 14, 2, 6, 10, 14, 3])
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8), mode="L").save(samples[4].label)  # wrong size
    samples[6].image.write_bytes(b"not an image")
    return samples


@pytest.mark.parametrize("world_size", [2, 3])
def test_shared_job_merges_into_what_one_process_writes(tmp_path, model, world_size):
    samples = _awkward_data_set(tmp_path / "data")
    common = dict(model=model, samples=samples, root=tmp_path / "data", progress=False, bad_labels="skip")
    gate = QualityGate(_Rows(0), flag_below=0.75, drop_below=0.6)
    single = refine_dataset(**common, out=tmp_path / "one", quality=gate)
    reports = _run_job(world_size, **common, out=tmp_path / "many", quality=gate)
    for report in reports:
        assert not isinstance(report, Exception), report
        assert report == single  # every process returns the report of the whole job
    assert single.dropped == ["images/3.png", "images/7.png"] and single.flagged == ["images/2.png"]
    assert len(single.failed) == 1 and single.failed[0][0].endswith("6.png") and len(single.bad_labels) == 1
    one = json.loads((tmp_path / "one" / "refine.json").read_text())
    many = json.loads((tmp_path / "many" / "refine.json").read_text())
    assert many["processes"] == world_size
    assert _without_times_and_ranks(many) == _without_times_and_ranks(one)
    assert {record["rank"] for record in many["outputs"].values()} == set(range(world_size))
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(tmp_path / "many") for p in (tmp_path / "many").rglob("*") if p.is_file()
    )
    for name in files:
        if name != Path("refine.json"):  # compared above
            assert (tmp_path / "many" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert (
        not list((tmp_path / "many").glob(".refine-journal*"))
        and not (tmp_path / "many" / ".semst.lock").exists()
    )


def test_a_job_of_three_processes_finishes_what_one_process_started(tmp_path, model, monkeypatch):
    root = tmp_path / "data"
    samples = _sky_over_road(root, [1, 2, 3, 4, 5, 6, 7])
    reference = refine_dataset(model, samples, tmp_path / "reference", root=root, progress=False)
    original, calls = Translator.translate, {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        refine_dataset(model, samples, tmp_path / "out", root=root, progress=False)
    monkeypatch.setattr(Translator, "translate", original)
    reports = _run_job(3, model=model, samples=samples, out=tmp_path / "out", root=root, progress=False)
    assert all(report.ok and report.written == 5 and report.skipped == 2 for report in reports)
    for sample in samples:
        for relative in (sample.relative, sample.label_relative):
            assert (tmp_path / "out" / relative).read_bytes() == (
                tmp_path / "reference" / relative
            ).read_bytes()
    manifest = json.loads((tmp_path / "out" / "refine.json").read_text())
    assert manifest["status"] == "complete" and reference.written == 7
    # The five images left were dealt out in turn: 2, 2 and 1 to the three processes.
    ranks = [manifest["outputs"][f"images/{i}.png"].get("rank") for i in range(7)]
    assert ranks[:2] == [None, None] and sorted(ranks[2:]) == [0, 0, 1, 1, 2]


def test_bad_labels_found_by_any_process_stop_every_process(tmp_path, model):
    root = tmp_path / "data"
    samples = _sky_over_road(root, [1, 2, 3, 4])
    for i in (1, 2):  # in the shares of both processes
        Image.fromarray(np.full((30, 40), 40, dtype=np.uint8), mode="L").save(samples[i].label)
    reports = _run_job(2, model=model, samples=samples, out=tmp_path / "out", root=root, progress=False)
    for report in reports:
        assert isinstance(report, RefineError)
        assert "2 label maps cannot be used" in str(report)
        assert str(samples[1].label) in str(report) and str(samples[2].label) in str(report)
    assert not (tmp_path / "out").exists()


def test_a_second_job_is_refused_by_the_first_jobs_lock(tmp_path, model):
    from semst.locking import FolderLock, FolderLockedError

    root = tmp_path / "data"
    samples = _sky_over_road(root, [1, 2])
    with FolderLock(tmp_path / "out", "semst refine"):  # another job's process 0
        reports = _run_job(2, model=model, samples=samples, out=tmp_path / "out", root=root, progress=False)
    assert all(isinstance(report, FolderLockedError) for report in reports)
    assert not (tmp_path / "out" / "images").exists()


def test_shards_are_disjoint_and_cover_everything():
    items = list(range(11))
    shares = [Distributed(rank, 4).shard(items) for rank in range(4)]
    assert sorted(sum(shares, [])) == items and [len(s) for s in shares] == [3, 3, 3, 2]
    assert Distributed().shard(items) == items
