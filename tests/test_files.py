"""letsjobit.files: a write lands whole or not at all, and leaves no temporary behind."""

from __future__ import annotations

import json

import pytest
from letsjobit import files


def test_a_write_replaces_the_target_whole_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "deep" / "state.json"
    files.write_json(target, {"a": 1})
    files.write_json(target, {"a": 2, "when": tmp_path})

    assert json.loads(target.read_text()) == {"a": 2, "when": str(tmp_path)}
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_previous_content_and_removes_its_temporary(tmp_path):
    target = tmp_path / "part.bin"
    files.write_bytes(target, b"old")

    with pytest.raises(RuntimeError), files.atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash mid-write")

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["part.bin"]


def test_temporaries_are_hidden_and_unique(tmp_path):
    names = {files.temporary_path(tmp_path / "x.parquet").name for _ in range(50)}
    assert len(names) == 50 and all(name.startswith(".x.parquet.") for name in names)


def test_replace_dir_swaps_a_folder_in_and_deletes_the_old_one(tmp_path):
    target, new = tmp_path / "table", tmp_path / ".table-new"
    target.mkdir()
    (target / "old.parquet").write_text("old")
    new.mkdir()
    (new / "new.parquet").write_text("new")

    files.replace_dir(new, target)

    assert [p.name for p in target.iterdir()] == ["new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_replace_dir_without_an_exchange_still_ends_with_the_new_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "exchange", lambda first, second: False)  # a system without renameat2
    target, new = tmp_path / "table", tmp_path / ".table-new"
    target.mkdir()
    (target / "old").write_text("old")
    new.mkdir()
    (new / "new").write_text("new")

    files.replace_dir(new, target)

    assert [p.name for p in target.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_link_tree_shares_the_files_and_leaves_the_source(tmp_path):
    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    (source / "a" / "f").write_text("x")

    files.link_tree(source, tmp_path / "dst")

    assert (tmp_path / "dst" / "a" / "f").read_text() == "x"
    assert (source / "a" / "f").stat().st_nlink == 2
