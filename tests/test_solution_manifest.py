"""A solution version's checksum manifest: written at save, checked at load. A missing, truncated or altered
file (any of them, solution.json included) is refused naming the file; a solution version written before
manifests existed still loads."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from personalize_torch.errors import InputError
from personalize_torch.hpo import copy_solution
from personalize_torch.solution_manifest import MANIFEST, file_digest, read_manifest
from personalize_torch.solution_version import SOLUTION_JSON, load_solution_version


@pytest.fixture
def copy(trained_solution, tmp_path):
    """A fresh copy of the session's trained solution version."""
    path = tmp_path / "solution"
    shutil.copytree(trained_solution["solution"], path)
    return path


def refused(path, verify: str = "sha256") -> InputError:
    with pytest.raises(InputError) as err:
        load_solution_version(path, verify=verify)
    return err.value


def test_save_lists_every_file_with_its_size_and_checksum(copy):
    files = read_manifest(copy)
    on_disk = sorted(p.name for p in copy.iterdir() if p.name != MANIFEST)
    assert sorted(files) == on_disk and {SOLUTION_JSON, "model.ckpt", "items.parquet"} <= set(files)
    for name, entry in files.items():
        assert entry == {"size": (copy / name).stat().st_size, "sha256": file_digest(copy / name)}
    assert json.loads((copy / SOLUTION_JSON).read_text())["manifest"] == MANIFEST
    assert load_solution_version(copy).recipe_name == "popularity_count"


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered"])
def test_a_damaged_file_is_refused_naming_it(trained_solution, tmp_path, damage):
    source = trained_solution["solution"]
    for name in sorted(read_manifest(source)):
        path = tmp_path / f"{damage}-{name}"
        shutil.copytree(source, path)
        target = path / name
        data = target.read_bytes()
        if damage == "missing":
            target.unlink()
        elif damage == "truncated":
            target.write_bytes(data[: len(data) // 2])
        else:   # one byte changed, the size kept
            at = len(data) // 3
            target.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
        err = refused(path)
        assert err.file == str(target), (name, err)
        assert {"missing": "missing", "truncated": "truncated", "altered": "SHA-256"}[damage] in err.message, err


def test_checking_sizes_only_finds_a_cut_file_not_a_changed_byte(copy):
    ckpt = copy / "model.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    load_solution_version(copy, verify="size")
    assert refused(copy).file == str(ckpt)
    ckpt.write_bytes(data[:-1])
    assert "truncated" in refused(copy, verify="size").message


def test_a_damaged_or_removed_manifest_is_refused(copy):
    manifest = copy / MANIFEST
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    assert refused(copy).file == str(manifest)
    manifest.write_text(json.dumps({"format": 1, "files": {"../outside": {"size": 1, "sha256": "0"}}}))
    assert refused(copy).file == str(manifest)
    manifest.unlink()       # solution.json says it was written with one
    err = refused(copy)
    assert err.file == str(manifest) and "missing" in err.message


def test_a_solution_version_written_before_manifests_loads_unchecked(copy, caplog):
    (copy / MANIFEST).unlink()
    info = json.loads((copy / SOLUTION_JSON).read_text())
    del info["manifest"]
    (copy / SOLUTION_JSON).write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="personalize_torch.solution_manifest"):
        assert load_solution_version(copy).recipe_name == "popularity_count"
    assert any(MANIFEST in r.getMessage() for r in caplog.records)


def test_a_copy_that_changes_solution_json_writes_the_manifest_again(trained_solution, tmp_path):
    """HPO's best-trial copy adds to solution.json: the copy still loads, checked."""
    best = copy_solution(trained_solution["solution"], tmp_path / "best", {"tunedHPOParams": {"a": "1"}})
    assert load_solution_version(best).info["tunedHPOParams"] == {"a": "1"}
    assert read_manifest(best)[SOLUTION_JSON]["sha256"] == file_digest(best / SOLUTION_JSON)
