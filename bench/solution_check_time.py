"""What checking a solution version's files costs at load: the checksum manifest read and verified, each way.

    python bench/serving_scale.py --synthesize /tmp/up_1m --users 1000000 --items 1000000 --only-write
    python bench/solution_check_time.py --solution /tmp/up_1m [--repeats 3]

Reports the solution version's files and bytes, then the seconds (best of `--repeats`, files in the page
cache after the first) of: `verify_manifest` with "size" and with "sha256", writing the manifest again (what
a save adds: every file read, hashed and flushed), and `load_solution_version` with verify "off", "size"
and "sha256" (the load a server does before it is ready).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from personalize_torch.solution_manifest import read_manifest, verify_manifest, write_manifest
from personalize_torch.solution_version import load_solution_version


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return round(min(times), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", required=True, help="a solution version written with a manifest")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    solution = Path(args.solution)
    files = read_manifest(solution)
    if files is None:
        p.error(f"{solution} has no manifest: write it again with this version")
    report = {"solution": str(solution), "files": len(files),
              "megabytes": round(sum(f["size"] for f in files.values()) / 2**20, 1),
              "largest": max(files, key=lambda n: files[n]["size"])}
    for mode in ("size", "sha256"):
        report[f"verify_{mode}_s"] = best_of(args.repeats, lambda mode=mode: verify_manifest(solution, mode))
    with tempfile.TemporaryDirectory(dir=solution.parent) as tmp:
        copy = Path(tmp) / "copy"
        shutil.copytree(solution, copy)
        report["write_manifest_s"] = best_of(args.repeats, lambda: write_manifest(copy))
    for mode in ("off", "size", "sha256"):
        report[f"load_{mode}_s"] = best_of(args.repeats, lambda mode=mode: load_solution_version(solution, verify=mode))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
