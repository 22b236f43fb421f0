"""semst.runtime: devices under torchrun, precision checks, and the single-process behaviour of Distributed."""

from __future__ import annotations

import pytest
import torch

from semst import runtime
from semst.runtime import Distributed, autocast, check_precision, resolve_device, resolve_precision


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


def test_auto_precision_on_a_cpu_without_bf16_instructions_is_fp32_without_timing(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: False)

    def probe(precision):
        raise AssertionError("nothing needs timing")

    assert resolve_precision("auto", torch.device("cpu"), probe) == (
        "fp32",
        "this CPU has no bf16 instructions (AVX512_BF16 / AMX)",
    )


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected"), [(1.0, 0.6, "bf16"), (1.0, 0.97, "fp32"), (0.5, 0.9, "fp32")]
)
def test_auto_precision_on_a_cpu_with_bf16_takes_bf16_only_when_it_times_faster(
    monkeypatch, fp32, bf16, expected
):
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: True)
    seconds = {"fp32": fp32, "bf16": bf16}
    choice, why = resolve_precision("auto", torch.device("cpu"), seconds.__getitem__)
    assert choice == expected and why.startswith("timed on this CPU")
    assert resolve_precision("auto", torch.device("cpu"))[0] == "fp32"  # nothing to time with


@pytest.mark.parametrize(
    ("capability", "expected"), [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"), ((6, 1), "fp32")]
)
def test_auto_precision_on_cuda_without_a_probe_follows_the_compute_capability(
    monkeypatch, capability, expected
):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda", 0))[0] == expected


@pytest.mark.parametrize(
    ("capability", "seconds", "expected"),
    [
        ((9, 0), {"fp32": 0.096, "bf16": 0.111}, "fp32"),  # an H200, multi-scale at CUT's settings
        ((9, 0), {"fp32": 1.0, "bf16": 0.5}, "bf16"),
        ((8, 6), {"fp32": 1.0, "bf16": 0.97}, "fp32"),  # less than 5 % faster
        ((7, 0), {"fp32": 1.0, "fp16": 0.8}, "fp16"),
        ((7, 0), {"fp32": 1.0, "fp16": 1.2}, "fp32"),
    ],
)
def test_auto_precision_on_cuda_takes_the_mixed_precision_only_when_it_times_faster(
    monkeypatch, capability, seconds, expected
):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    timed = []

    def probe(precision):
        timed.append(precision)
        return seconds[precision]

    choice, why = resolve_precision("auto", torch.device("cuda", 0), probe)
    assert choice == expected
    assert sorted(timed) == sorted(seconds)  # fp32 and the one candidate the GPU has
    assert why.startswith(f"timed on this GPU (compute capability {capability[0]}.{capability[1]})")


def test_auto_precision_on_an_old_gpu_is_fp32_without_timing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))

    def probe(precision):
        raise AssertionError("nothing needs timing")

    assert resolve_precision("auto", torch.device("cuda", 0), probe)[0] == "fp32"


def test_an_explicit_precision_is_kept_and_checked():
    assert resolve_precision("bf16", torch.device("cpu")) == ("bf16", "as requested")
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))


def test_the_cpu_bf16_check_reads_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    cpuinfo = tmp_path / "cpuinfo"
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        return real_open(cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert runtime.cpu_bf16_instructions() is False
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert runtime.cpu_bf16_instructions() is True
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu amx_bf16 amx_tile\n")
    assert runtime.cpu_bf16_instructions() is True
    assert runtime.cpu_bf16_features() == ["amx_bf16", "amx_tile"]


def test_bf16_is_flagged_as_slow_only_on_a_cpu_without_bf16_instructions(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: False)
    assert "40x slower" in runtime.slow_precision_warning(torch.device("cpu"), "bf16")
    assert runtime.slow_precision_warning(torch.device("cpu"), "fp32") is None
    assert runtime.slow_precision_warning(torch.device("cuda"), "bf16") is None
    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: True)
    assert runtime.slow_precision_warning(torch.device("cpu"), "bf16") is None


@pytest.mark.parametrize("bf16_instructions", [False, True])
def test_translating_in_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(
    tmp_path, image_folders, make_config, monkeypatch, caplog, bf16_instructions
):
    from semst.inference import translate_files
    from semst.translators import Translator

    monkeypatch.setattr(runtime, "cpu_bf16_instructions", lambda: bf16_instructions)
    source, target = image_folders
    translator = Translator.from_config(make_config("cut", source, target))
    with caplog.at_level("WARNING", logger="semst.translate"):
        report = translate_files(
            translator, [source], tmp_path / "out", tiling=translator.tiling(precision="bf16"), progress=False
        )
    assert (
        report.written
        and ("--precision bf16 on a CPU without bf16 instructions" in caplog.text) is not bf16_instructions
    )
