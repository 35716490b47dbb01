"""Batch inference from the command line, as a Personalize batch inference job:

    python -m personalize_torch.batch --solution <dir> --input <in.jsonl> --output <out.jsonl> [--num-results N]

Input lines are {"userId": ...} (recommendations for a user), {"itemId": ...} (related items) or
{"userId": ..., "itemList": [...]} (personalized ranking of the given items).

A batch segment job (Personalize's CreateBatchSegmentJob) with a USER_SEGMENTATION solution
(item_affinity, item_attribute_affinity), or any solution with --job-type segment:

    python -m personalize_torch.batch --solution <dir> --input items.jsonl --output segments.jsonl [--num-results N]
        [--filter 'INCLUDE UserID WHERE Users.AGE >= $AGE' --filter-values '{"AGE": "30"}']

Input lines are {"itemId": ...} or {"itemAttributes": "ITEMS.GENRES = \"Comedy\""}; each output line lists
"recommendedUsers" in descending probability.

Large jobs: the input is read and scored in chunks of --chunk-lines lines, each chunk written to
<output>.parts/ as it is done; when all are, they are joined into <output> (replacing an existing file, as
Personalize replaces its output) and <output>.parts/ is removed. A job that stopped (killed, out of memory,
machine lost) resumes where it stopped when the same command is run again, and writes the same output as an
uninterrupted run; a different command for the same output refuses to mix in the old chunks unless --restart.
Workers: --num-workers N on one machine; on several machines, one --shard i/n process each (or torchrun, which
sets RANK and WORLD_SIZE) writing to a shared <output>.parts/, then --merge.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from personalize_torch.errors import InputError, exit_on_input_error
from personalize_torch.filters import Filter
from personalize_torch.serving.inference.predictor import MAX_RESULTS, Predictor
from personalize_torch.serving.jobs.batch_inference import chunk_results
from personalize_torch.serving.jobs.batch_segments import segment_results
from personalize_torch.serving.jobs.job_parts import JobParts, differences
from personalize_torch.serving.jobs.jsonlines_job import Results, read_lines, scan_input
from personalize_torch.serving.jobs.local_workers import run_workers, worker_env
from personalize_torch.serving.jobs.shards import ALL, Shard, chunk_lines_total, run_shard, todo, wait_for_chunks
from personalize_torch.serving.jobs.user_segments import MAX_USERS_PER_SEGMENT, UserSegmenter
from personalize_torch.solution_version import SOLUTION_JSON

CHUNK_LINES = 4096            # input lines per chunk file: the unit of resuming and of sharding
PROGRESS_MIN_LINES = 10_000   # smaller inputs get no progress bar


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m personalize_torch.batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", required=True, help="solution version directory written by train.py")
    p.add_argument("--input", required=True, help="JSON lines, one {\"userId\": ...} or {\"itemId\": ...} per line")
    p.add_argument("--output", required=True,
                   help="where to write the results (JSON lines); an existing file is replaced when the job "
                        "finishes, and chunks finished so far are kept in <output>.parts/ until then")
    p.add_argument("--num-results", type=int, default=25,
                   help=f"items per line, 1-{MAX_RESULTS} (default 25); users per segment in a segment job, "
                        f"1-{MAX_USERS_PER_SEGMENT}")
    p.add_argument("--include-seen", action="store_true", help="do not leave out items already in the user's history")
    p.add_argument("--filter", default=None,
                   help="a Personalize filter expression, e.g. 'EXCLUDE ItemID WHERE Items.GENRES IN (\"Horror\")'")
    p.add_argument("--filter-values", default=None,
                   help='the filter\'s parameters as JSON, e.g. \'{"GENRE": "\\"Comedy\\""}\' (lines may add filterValues)')
    p.add_argument("--job-type", choices=("auto", "inference", "segment"), default="auto",
                   help="inference (recommendations) or segment (users for items); auto: segment for "
                        "USER_SEGMENTATION recipes (item_affinity, item_attribute_affinity)")
    p.add_argument("--backfill-popular", action="store_true",
                   help="fill lists that the filter leaves short with popular items that pass it "
                        "(score null, reasons [\"Popular item\"])")
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda (workers of a sharded job use cuda:<local rank or shard> modulo the GPUs)")
    p.add_argument("--chunk-lines", type=int, default=CHUNK_LINES,
                   help=f"input lines per chunk (default {CHUNK_LINES}): the unit that is written, resumed and "
                        "shared between workers; part of the job, so a resumed run must use the same value")
    p.add_argument("--restart", action="store_true",
                   help="discard the unfinished chunks of an earlier job for this output and start again")
    p.add_argument("--num-workers", type=int, default=1,
                   help="worker processes on this machine (default 1), each scoring every n-th chunk; "
                        "the machine's cores are shared between them unless OMP_NUM_THREADS is set")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="score only chunks k with k %% N == I (I from 0) and leave them in <output>.parts/; "
                        "run one per machine against a shared directory, then the same command with --merge "
                        "(under torchrun, RANK/WORLD_SIZE give the shard and rank 0 merges)")
    p.add_argument("--merge", action="store_true",
                   help="only join the chunks the shards wrote into <output> (fails, naming them, if any is missing)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary on stderr")
    return p.parse_args(argv)


def worker_command(args: argparse.Namespace, shard: Shard) -> list[str]:
    """The command line of one worker of a --num-workers job: the same job, as `--shard i/n`."""
    cmd = [sys.executable, "-m", "personalize_torch.batch", "--solution", args.solution, "--input", args.input,
           "--output", args.output, "--num-results", str(args.num_results), "--job-type", args.job_type,
           "--device", args.device, "--chunk-lines", str(args.chunk_lines), "--shard", str(shard), "--quiet"]
    if args.include_seen:
        cmd.append("--include-seen")
    if args.filter is not None:
        cmd += ["--filter", args.filter]
    if args.filter_values is not None:
        cmd += ["--filter-values", args.filter_values]
    if args.backfill_popular:
        cmd.append("--backfill-popular")
    return cmd


def parse_filter_values(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", column="--filter-values") from None
    if not isinstance(values, dict):
        raise InputError("expected a JSON object of strings", column="--filter-values")
    return values


def solution_digest(solution: str | Path) -> str | None:
    """Which solution version (its solution.json is unique to it); None when there is none to read."""
    try:
        return hashlib.sha256((Path(solution) / SOLUTION_JSON).read_bytes()).hexdigest()
    except OSError:
        return None


def job_description(args: argparse.Namespace, filter_values: dict | None, input_sha256: str, n_lines: int) -> dict:
    """Everything that decides the output's bytes, but the device: a resumed or sharded run must match it."""
    return {"solution": solution_digest(args.solution), "input": {"sha256": input_sha256, "lines": n_lines},
            "chunk_lines": args.chunk_lines,
            "options": {"num_results": args.num_results, "include_seen": args.include_seen, "filter": args.filter,
                        "filter_values": filter_values, "job_type": args.job_type,
                        "backfill_popular": args.backfill_popular}}


def which_shard(args: argparse.Namespace) -> tuple[Shard | None, bool]:
    """(this process's shard or None for the whole job, whether it came from torchrun's environment)."""
    if args.num_workers < 1:
        raise InputError("must be at least 1", column="--num-workers")
    if args.chunk_lines < 1:
        raise InputError("must be at least 1", column="--chunk-lines")
    shard = Shard.parse(args.shard) if args.shard is not None else None
    from_env = shard is None and Shard.from_env() is not None
    shard = shard or Shard.from_env()
    if shard is not None and (args.num_workers > 1 or args.merge):
        option = "--num-workers" if args.num_workers > 1 else "--merge"
        raise InputError(f"cannot be combined with a shard (--shard {shard}, or RANK/WORLD_SIZE from torchrun)",
                         column=option)
    if args.merge and args.num_workers > 1:
        raise InputError("cannot be combined with --num-workers", column="--merge")
    if shard is not None and args.restart:
        raise InputError("would discard the other shards' work: run --restart once without a shard (or remove "
                         f"{JobParts(args.output).dir}) before starting the shards", column="--restart")
    return shard, from_env


def worker_device(device: str, shard: Shard | None) -> str:
    """`device`, with a plain "cuda" spread over the GPUs by local rank (torchrun) or shard index."""
    if device != "cuda" or shard is None:
        return device
    import torch

    local = int(os.environ.get("LOCAL_RANK", shard.index))
    return f"cuda:{local % max(1, torch.cuda.device_count())}"


def job_results(args: argparse.Namespace, job_filter: Filter | None, filter_values: dict | None,
                device: str) -> tuple[Results, str]:
    """The job's scoring function (loading the solution and checking the options against it), and its name."""
    predictor = Predictor.from_dir(args.solution, device=device)
    segment_job = args.job_type == "segment" or (
        args.job_type == "auto" and predictor.recipe.recipe_type == "USER_SEGMENTATION")
    limit = MAX_USERS_PER_SEGMENT if segment_job else MAX_RESULTS
    if not 1 <= args.num_results <= limit:
        raise InputError(f"must be between 1 and {limit}, got {args.num_results}", column="--num-results")
    if job_filter is not None:
        job_filter.validate(predictor.catalogue)
    if segment_job:
        return segment_results(UserSegmenter(predictor), args.num_results, not args.include_seen, job_filter,
                               filter_values), "batch segments"
    return chunk_results(predictor, args.num_results, not args.include_seen, job_filter, filter_values,
                         backfill_popular=args.backfill_popular), "batch inference"


def progress_bar(total_lines: int, desc: str, quiet: bool) -> tqdm | None:
    """A bar in input lines on stderr for large inputs (a slow refresh when stderr is a log file)."""
    if quiet or total_lines < PROGRESS_MIN_LINES:
        return None
    return tqdm(total=total_lines, unit="line", unit_scale=True, desc=desc, file=sys.stderr, dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0)


def run_local_workers(args: argparse.Namespace, parts: JobParts, n_chunks: int, n_lines: int) -> None:
    """--num-workers: one `--shard i/n` process each, a progress bar over the chunks they write."""
    n = args.num_workers
    seen = parts.done()
    missing = [k for k in range(n_chunks) if k not in seen]
    bar = progress_bar(chunk_lines_total(missing, args.chunk_lines, n_lines), f"batch job, {n} workers", args.quiet)

    def tick() -> None:
        new = parts.done() - seen
        seen.update(new)
        if bar is not None:
            bar.update(chunk_lines_total(new, args.chunk_lines, n_lines))

    try:
        status, failed = run_workers([worker_command(args, Shard(i, n)) for i in range(n)], worker_env(n),
                                     on_tick=tick)
        tick()
    finally:
        if bar is not None:
            bar.close()
    if status != 0:
        print(f"error: worker {failed}/{n} exited with status {status}; finished chunks are kept in {parts.dir}, "
              "and running the same command again resumes the job", file=sys.stderr)
        sys.exit(status)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    in_path, out_path = Path(args.input), Path(args.output)
    if not in_path.exists():
        raise InputError("input file not found", file=str(in_path))
    job_filter = Filter.parse(args.filter) if args.filter else None
    filter_values = parse_filter_values(args.filter_values)
    shard, from_env = which_shard(args)
    input_sha256, n_lines = scan_input(in_path)
    job = job_description(args, filter_values, input_sha256, n_lines)
    parts = JobParts(out_path)
    n_chunks = -(-n_lines // args.chunk_lines)
    if args.merge:
        saved = parts.saved_job()
        if saved is None:
            raise InputError(f"nothing to merge: no job in {parts.dir}", column="--merge")
        if saved != job:
            raise InputError("holds a job with other arguments or input (differs in: "
                             f"{', '.join(differences(saved, job))}); --merge takes the shards' arguments",
                             file=str(parts.dir))
    elif args.num_workers > 1:
        parts.check(job, restart=args.restart)
        if parts.missing(n_chunks):
            run_local_workers(args, parts, n_chunks, n_lines)
    else:
        parts.check(job, restart=args.restart)
        mine = todo(parts, n_chunks, shard or ALL)
        if mine:   # the solution is loaded, and the options checked against it, only when there is work
            results, name = job_results(args, job_filter, filter_values, worker_device(args.device, shard))
        parts.start(job)
        if mine:
            bar = progress_bar(chunk_lines_total(mine, args.chunk_lines, n_lines),
                               name if shard is None else f"{name}, shard {shard}", args.quiet)
            try:
                run_shard(read_lines(in_path), args.chunk_lines, parts, results, shard or ALL, bar)
            finally:
                if bar is not None:
                    bar.close()
        if shard is not None and not (from_env and shard.index == 0):
            if not args.quiet and not from_env:
                print(f"shard {shard}: its chunks are in {parts.dir}; when every shard is done, run the same "
                      "command with --merge instead of --shard", file=sys.stderr)
            return
        if shard is not None:
            if not args.quiet and parts.missing(n_chunks):
                print("rank 0: waiting for the other ranks' chunks", file=sys.stderr)
            wait_for_chunks(parts, n_chunks)
    counts = parts.merge(n_chunks)
    if not args.quiet:
        print(f"{counts['lines']} lines scored ({counts['errors']} with errors) -> {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
