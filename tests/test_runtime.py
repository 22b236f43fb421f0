"""semst.runtime: devices under torchrun, precision checks, and the single-process behaviour of Distributed."""

from __future__ import annotations

import pytest
import torch

from semst.runtime import Distributed, autocast, check_precision, resolve_device


def test_cuda_means_the_gpu_of_this_torchrun_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device("auto") == torch.device("cuda", 3)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit index is kept
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("cuda") == torch.device("cuda")


def test_precisions_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        check_precision(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="fp32, bf16 or fp16"):
        autocast(torch.device("cpu"), "fp8")
    check_precision(torch.device("cpu"), "bf16")


def test_one_process_runs_everything_itself():
    single = Distributed()
    assert not single.enabled and single.is_main
    assert single.all_gather_object({"a": 1}) == [{"a": 1}]
    assert single.broadcast_object(5) == 5
    assert single.run_on_main(lambda: "done") == "done"
    with pytest.raises(KeyError):
        single.run_on_main(lambda: {}["missing"])
