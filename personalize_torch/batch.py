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
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from personalize_torch.errors import InputError, exit_on_input_error
from personalize_torch.filters import Filter
from personalize_torch.serving.inference.predictor import MAX_RESULTS, Predictor
from personalize_torch.serving.jobs.batch_inference import run_batch_inference
from personalize_torch.serving.jobs.batch_segments import run_batch_segments
from personalize_torch.serving.jobs.user_segments import MAX_USERS_PER_SEGMENT, UserSegmenter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m personalize_torch.batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", required=True, help="solution version directory written by train.py")
    p.add_argument("--input", required=True, help="JSON lines, one {\"userId\": ...} or {\"itemId\": ...} per line")
    p.add_argument("--output", required=True, help="where to write the results (JSON lines)")
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
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p.parse_args(argv)


@exit_on_input_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    in_path, out_path = Path(args.input), Path(args.output)
    if not in_path.exists():
        raise InputError("input file not found", file=str(in_path))
    job_filter = Filter.parse(args.filter) if args.filter else None
    job_filter_values = None
    if args.filter_values:
        try:
            job_filter_values = json.loads(args.filter_values)
        except json.JSONDecodeError as err:
            raise InputError(f"not valid JSON ({err.msg})", column="--filter-values") from None
        if not isinstance(job_filter_values, dict):
            raise InputError("expected a JSON object of strings", column="--filter-values")
    predictor = Predictor.from_dir(args.solution, device=args.device)
    segment_job = args.job_type == "segment" or (
        args.job_type == "auto" and predictor.recipe.recipe_type == "USER_SEGMENTATION")
    limit = MAX_USERS_PER_SEGMENT if segment_job else MAX_RESULTS
    if not 1 <= args.num_results <= limit:
        raise InputError(f"must be between 1 and {limit}, got {args.num_results}", column="--num-results")
    if job_filter is not None:
        job_filter.validate(predictor.catalogue)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    with open(in_path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst, \
            tqdm(total=in_path.stat().st_size, unit="B", unit_scale=True,
                 desc="batch segments" if segment_job else "batch inference", disable=None, file=sys.stderr) as bar:
        if segment_job:
            counts = run_batch_segments(UserSegmenter(predictor), src, dst, args.num_results, not args.include_seen,
                                        job_filter, job_filter_values, bar)
        else:
            counts = run_batch_inference(predictor, src, dst, args.num_results, not args.include_seen, bar,
                                         job_filter, job_filter_values, backfill_popular=args.backfill_popular)
    os.replace(tmp, out_path)
    print(f"{counts['lines']} lines scored ({counts['errors']} with errors) -> {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
