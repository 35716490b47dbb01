"""A dataset import killed midway (SIGKILL: no cleanup runs) leaves the previous dataset group intact and
readable, and the next import succeeds and removes what the killed one left.

The import runs as `python -m personalize_torch.data.import_jobs` in a subprocess. It is killed at exact
points (the process kills itself just before or just after its n-th rename of a finished file into place:
a bucket file, an ids file, the Items file, group.json, the commit) and at a seeded random moment of a
larger import. Killed before the commit, the group loads exactly as it was (same rows, same hash of every
value); killed after it, exactly as the import made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.import_jobs import GROUP_FILE, import_dataset, leftover_files, load_group_directory

REPO = Path(__file__).resolve().parents[2]

# Runs the import command, killing itself (SIGKILL) just before or after the `n`-th os.replace whose
# target's name contains `name`.
KILLER = """
import os, signal, sys
name, n, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = 0
real_replace = os.replace
def replace(src, dst):
    global seen
    hit = name in os.path.basename(str(dst))
    seen += hit
    if hit and seen == n and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
    if hit and seen == n and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
from personalize_torch.data.import_jobs import main
main(sys.argv[4:])
"""


def interactions(n_users: int, per_user: int, seed: int, first_user: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i}" for i in range(first_user, first_user + n_users)], per_user)
    return pd.DataFrame({C.USER_ID: users, C.ITEM_ID: [f"i{k}" for k in rng.integers(0, 500, len(users))],
                         C.TIMESTAMP: 1_600_000_000 + rng.integers(0, 10**7, len(users)),
                         C.EVENT_TYPE: rng.choice(["click", "purchase"], len(users))})


def items(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({C.ITEM_ID: [f"i{k}" for k in range(n)], "GENRES": rng.choice(["a", "b|c", "d"], n),
                         "PRICE": rng.random(n).round(3)})


def state(group: Path) -> dict:
    """What a load of the group gives: each dataset's rows and a hash of all their values."""
    loaded = load_group_directory(group)
    out = {}
    for name, frame in (("Interactions", loaded.interactions), ("Items", loaded.items), ("Users", loaded.users)):
        if frame is not None:
            text = frame.astype(str).to_csv(index=False).encode()
            out[name] = (len(frame), hashlib.sha256(text).hexdigest())
    return out


def leftovers(group: Path) -> list[str]:
    return [p.name for p in leftover_files(group)]


def run_import(group: Path, dataset: str, file: Path, mode: str, kill: tuple[str, int, str] | None = None
               ) -> subprocess.CompletedProcess:
    command = ["--group", str(group), "--dataset", dataset, "--file", str(file), "--mode", mode]
    head = [sys.executable, "-c", KILLER, *map(str, kill)] if kill else [
        sys.executable, "-m", "personalize_torch.data.import_jobs"]
    return subprocess.run(head + command, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """A group with Interactions and Items, the files the killed imports bring, and the state each import
    gives when it runs to the end."""
    root = tmp_path_factory.mktemp("crash")
    files = {"first": root / "first.csv", "more": root / "more.csv", "items": root / "items.csv",
             "new_items": root / "new_items.csv"}
    interactions(300, 6, seed=0).to_csv(files["first"], index=False)
    interactions(300, 4, seed=1, first_user=200).to_csv(files["more"], index=False)
    items(400, seed=2).to_csv(files["items"], index=False)
    items(600, seed=3).to_csv(files["new_items"], index=False)
    group = root / "group"
    import_dataset(group, C.INTERACTIONS, files["first"])
    import_dataset(group, C.ITEMS, files["items"])
    expected = {}
    for dataset, file, mode in ((C.INTERACTIONS, "more", "INCREMENTAL"), (C.INTERACTIONS, "more", "FULL"),
                                (C.ITEMS, "new_items", "FULL")):
        done = root / f"done-{dataset}-{mode}"
        shutil.copytree(group, done)
        import_dataset(done, dataset, files[file], mode=mode)
        expected[dataset, mode] = state(done)
    return {"root": root, "group": group, "files": files, "before": state(group), "expected": expected}


KILLS = [  # (dataset, file, mode, (file name, n-th, before/after its rename))
    (C.INTERACTIONS, "more", "INCREMENTAL", ("part-", 5, "after")),
    (C.INTERACTIONS, "more", "FULL", ("USER_ID-", 1, "after")),
    (C.INTERACTIONS, "more", "INCREMENTAL", (GROUP_FILE, 1, "before")),
    (C.INTERACTIONS, "more", "FULL", (GROUP_FILE, 1, "after")),
    (C.ITEMS, "new_items", "FULL", ("Items-", 1, "after")),
]


@pytest.mark.parametrize("dataset, file, mode, kill", KILLS, ids=[f"{k[0]}-{k[2]}-{k[3][0]}{k[3][1]}-{k[3][2]}"
                                                                  for k in KILLS])
def test_an_import_killed_at_a_write_leaves_the_group_whole(base, tmp_path, dataset, file, mode, kill):
    group = tmp_path / "group"
    shutil.copytree(base["group"], group)
    before_json = (group / GROUP_FILE).read_bytes()
    killed = run_import(group, dataset, base["files"][file], mode, kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    committed = kill[0] == GROUP_FILE and kill[2] == "after"
    if committed:
        assert state(group) == base["expected"][dataset, mode]
    else:
        assert (group / GROUP_FILE).read_bytes() == before_json
        assert state(group) == base["before"]
        assert leftovers(group), "the kill came before the import had written anything"
    # the next import succeeds, gives what an import that was never interrupted gives, and leaves nothing behind
    import_dataset(group, dataset, base["files"][file], mode="FULL" if committed else mode)
    assert state(group) == base["expected"][dataset, mode]
    assert leftovers(group) == []


def test_an_import_killed_at_a_random_moment_leaves_the_old_group_or_the_new_one(tmp_path):
    """The real command, killed after a seeded random delay while it reads, checks and writes a larger file."""
    big = tmp_path / "big.csv"
    interactions(6_000, 10, seed=4).to_csv(big, index=False)
    small = tmp_path / "small.csv"
    interactions(50, 4, seed=5).to_csv(small, index=False)
    group = tmp_path / "group"
    import_dataset(group, C.INTERACTIONS, small)
    before = state(group)
    done = tmp_path / "done"
    shutil.copytree(group, done)
    took = []
    for _ in range(2):   # the first run also compiles and caches modules: time the second
        shutil.rmtree(done)
        shutil.copytree(group, done)
        start = time.perf_counter()
        assert run_import(done, C.INTERACTIONS, big, "INCREMENTAL").returncode == 0
        took.append(time.perf_counter() - start)
    took = min(took)
    after = state(done)
    outcomes = []
    for delay in np.random.default_rng(0).uniform(0.4, 0.9, 3) * took:
        process = subprocess.Popen([sys.executable, "-m", "personalize_torch.data.import_jobs", "--group", str(group),
                                    "--dataset", C.INTERACTIONS, "--file", str(big), "--mode", "INCREMENTAL"],
                                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        now = state(group)
        assert now in (before, after)
        outcomes.append("old" if now == before else "new")
        if now == after:                    # it finished first: start again from the old group
            shutil.rmtree(group)
            import_dataset(group, C.INTERACTIONS, small)
    import_dataset(group, C.INTERACTIONS, big, mode="INCREMENTAL")
    assert state(group) == after and leftovers(group) == []
    assert "old" in outcomes, f"every kill came after the import had finished ({outcomes}, {took:.1f} s)"


def test_group_json_is_flushed_then_renamed_then_its_directory_flushed(tmp_path, monkeypatch):
    """The commit is durable: the new group.json's bytes reach the disk before the rename makes them the
    group, and the rename itself is flushed (the directory)."""
    file = tmp_path / "a.csv"
    interactions(5, 2, seed=6).to_csv(file, index=False)
    group = tmp_path / "group"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    import_dataset(group, C.INTERACTIONS, file)
    at = events.index(("replace", str(group / GROUP_FILE)))
    assert events[at - 1][0] == "fsync" and events[at - 1][1].startswith(str(group / f".{GROUP_FILE}.tmp-"))
    assert events[at + 1] == ("fsync", str(group))
    # every data file was flushed before the commit
    written = [Path(dst).name for kind, dst in events[:at] if kind == "replace"]
    assert written and all(n.endswith(".parquet") for n in written)
    assert json.loads((group / GROUP_FILE).read_text())["datasets"][C.INTERACTIONS]["imports"][0]["rows_read"] == 10


def test_a_second_import_while_one_runs_is_refused(tmp_path, capsys):
    import fcntl

    from personalize_torch.data.import_jobs import LOCK_FILE, main

    file = tmp_path / "a.csv"
    interactions(5, 2, seed=7).to_csv(file, index=False)
    group = tmp_path / "group"
    import_dataset(group, C.INTERACTIONS, file)
    before = state(group)
    # the lock held through another open file, as a running import holds it (flock locks belong to an open file)
    with open(group / LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit) as exit_status:
            main(["--group", str(group), "--dataset", C.INTERACTIONS, "--file", str(file), "--mode", "INCREMENTAL"])
    assert exit_status.value.code == 2 and "another import" in capsys.readouterr().err
    assert state(group) == before
    import_dataset(group, C.INTERACTIONS, file)      # released: imports run again
