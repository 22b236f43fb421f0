"""Tests of semst.files: atomic writes leave the old file or the new one, never a temporary file."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from semst.files import atomic_path, atomic_write, remove_temporaries, write_json, write_text


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def test_atomic_write_bytes_and_text(tmp_path):
    with atomic_write(tmp_path / "deep" / "a.bin", "wb") as stream:
        stream.write(b"\x00\x01")
    with atomic_write(tmp_path / "b.txt", "w") as stream:
        stream.write("grün\n")
    assert (tmp_path / "deep" / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "grün\n".encode()
    assert _temporaries(tmp_path) == [] and _temporaries(tmp_path / "deep") == []


def test_temporary_is_hidden_in_the_destination_folder(tmp_path):
    with atomic_write(tmp_path / "x.png", "wb"):
        (name,) = _temporaries(tmp_path)
        assert name.startswith(".x.png.") and name.endswith(".tmp")
        assert not (tmp_path / "x.png").exists()
    with atomic_path(tmp_path / "y.pt") as temporary:
        assert temporary.parent == tmp_path and temporary.is_file()
        assert temporary.name.startswith(".y.pt.") and temporary.name.endswith(".tmp")


def test_exception_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path, "w") as stream:
        stream.write("new, half written")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert _temporaries(tmp_path) == []

    with pytest.raises(KeyboardInterrupt), atomic_path(path) as temporary:
        temporary.write_text("new")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert _temporaries(tmp_path) == []


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError), atomic_write(tmp_path / "a.bin") as stream:
        stream.write(b"x")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_with_what_the_library_wrote(tmp_path):
    path = write_text(tmp_path / "m.bin", "old")
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:  # as torch.jit.save writes
        stream.write(b"new")
    assert path.read_bytes() == b"new"
    assert _temporaries(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_follow_the_umask(tmp_path, umask_027):
    written = [
        write_text(tmp_path / "a.txt", "a"),
        write_json(tmp_path / "b.json", {"b": 1}),
    ]
    with atomic_write(tmp_path / "c.bin") as stream:
        stream.write(b"c")
    with atomic_path(tmp_path / "d.bin") as temporary:
        temporary.write_bytes(b"d")
    with atomic_path(tmp_path / "e.bin") as temporary:  # a writer that renames its own 0o600 file over ours
        own = tmp_path / "own"
        own.write_bytes(b"e")
        own.chmod(0o600)
        own.replace(temporary)
    written += [tmp_path / "c.bin", tmp_path / "d.bin", tmp_path / "e.bin"]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path  # 0o666 & ~0o027, not mkstemp's 0o600


def test_write_json_round_trip(tmp_path):
    data = {"name": "semst", "scores": [0.5, None, 1], "nested": {"ü": True}}
    path = write_json(tmp_path / "out" / "scores.json", data)
    assert path == tmp_path / "out" / "scores.json"
    assert json.loads(path.read_text(encoding="utf-8")) == data
    assert path.read_text(encoding="utf-8") == json.dumps(data, indent=2)


def test_write_json_of_unserialisable_data_writes_nothing(tmp_path):
    path = write_json(tmp_path / "a.json", {"old": 1})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"old": 1}
    assert _temporaries(tmp_path) == []


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "a", "a"):
        pass
    with pytest.raises(ValueError, match="encoding"), atomic_write(tmp_path / "a", "wb", encoding="utf-8"):
        pass
    with pytest.raises(LookupError), atomic_write(tmp_path / "a", "w", encoding="no-such-codec"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_remove_temporaries_removes_only_semst_names(tmp_path):
    killed = tmp_path / "sub"
    with pytest.raises(KeyboardInterrupt), atomic_write(killed / "image.png") as stream:
        stream.write(b"half")
        leftover = next(killed.glob(".image.png.*.tmp"))
        os.link(leftover, killed / "copy-of-leftover")  # keep a name: the context manager removes its own
        raise KeyboardInterrupt
    os.replace(killed / "copy-of-leftover", leftover)  # what a SIGKILL would have left
    others = [tmp_path / "notes.tmp", tmp_path / ".x.tmp", tmp_path / f".x.{'g' * 32}.tmp", killed / "a.png"]
    for path in others:
        path.write_text("user")
    (tmp_path / f".folder.{'a' * 32}.tmp").mkdir()  # a folder with the name: not a file, kept
    assert remove_temporaries(tmp_path) == []  # not recursive: the leftover is in a sub-folder
    assert remove_temporaries(tmp_path, recursive=True) == [leftover]
    assert all(path.read_text() == "user" for path in others)
    assert (tmp_path / f".folder.{'a' * 32}.tmp").is_dir()
    assert remove_temporaries(tmp_path / "missing") == []


def test_a_full_disk_names_the_destination_and_keeps_the_old_file(tmp_path):
    path = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(OSError) as caught, atomic_write(path, "w"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    with pytest.raises(OSError) as caught, atomic_path(path) as temporary:
        raise OSError(errno.ENOSPC, "No space left on device", str(temporary))
    assert caught.value.filename == str(path)
    assert path.read_text() == "old" and _temporaries(tmp_path) == []
    # An error about another file keeps its own name.
    with pytest.raises(FileNotFoundError) as caught, atomic_write(path, "w"):
        open(tmp_path / "elsewhere" / "x")  # noqa: SIM115 - raises
    assert caught.value.filename == str(tmp_path / "elsewhere" / "x")


def test_an_unwritable_folder_is_named(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(OSError) as caught, atomic_write(tmp_path / "blocker" / "a.txt", "w"):
        pass
    assert "blocker" in str(caught.value)
