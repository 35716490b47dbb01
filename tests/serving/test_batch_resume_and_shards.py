"""Large batch jobs: a stopped job resumes to the same bytes, and shards merge to what one process writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personalize_torch.batch import main, parse_args, worker_command
from personalize_torch.serving.jobs.job_parts import JobParts
from personalize_torch.serving.jobs.local_workers import run_workers, worker_env
from personalize_torch.serving.jobs.shards import Shard

REPO = Path(__file__).resolve().parents[2]
CHUNK = 10


def job_input(path: Path, n: int = 157) -> Path:
    """n lines mixing users (known and new), related items, rankings, blank and bad lines."""
    lines = []
    for i in range(n):
        kind = i % 9
        lines.append(json.dumps({"userId": f"u{i % 300}"}) if kind < 4 else
                     json.dumps({"userId": f"new-{i}"}) if kind == 4 else
                     json.dumps({"itemId": f"i{i % 120}"}) if kind == 5 else
                     json.dumps({"userId": f"u{i}", "itemList": [f"i{j}" for j in range(i % 7, 12)]}) if kind == 6 else
                     "" if kind == 7 else "{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(solution: str, src: Path, out: Path, *extra: str) -> None:
    main(["--solution", solution, "--input", str(src), "--output", str(out), "--num-results", "5",
          "--chunk-lines", str(CHUNK), "--quiet", *extra])


@pytest.fixture
def job(trained_solution, tmp_path):
    """(solution, input, the output of one uninterrupted process as bytes)."""
    solution = trained_solution["solution"]
    src = job_input(tmp_path / "in.jsonl")
    run(solution, src, tmp_path / "whole.jsonl")
    whole = (tmp_path / "whole.jsonl").read_bytes()
    assert len(whole.splitlines()) == sum(1 for line in src.read_text().splitlines() if line)   # none for blanks
    assert not JobParts(tmp_path / "whole.jsonl").dir.exists()           # the work directory is gone
    return solution, src, whole


def stop_after(monkeypatch, k: int) -> list[int]:
    """Make JobParts.write_chunk fail after k chunks (a process stopped mid-way); returns the chunks written."""
    written, real = [], JobParts.write_chunk

    def write_chunk(self, i, results):
        if len(written) >= k:
            raise RuntimeError("stopped")
        counts = real(self, i, results)
        written.append(i)
        return counts

    monkeypatch.setattr(JobParts, "write_chunk", write_chunk)
    return written


def test_a_stopped_job_resumes_where_it_stopped_and_writes_the_same_bytes(job, tmp_path, monkeypatch):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    stop_after(monkeypatch, 4)
    with pytest.raises(RuntimeError, match="stopped"):
        run(solution, src, out)
    assert not out.exists() and JobParts(out).done() == {0, 1, 2, 3}
    monkeypatch.undo()
    written = stop_after(monkeypatch, 10**9)
    run(solution, src, out)                                     # the same command again
    assert sorted(written) == list(range(4, 16))                # only the chunks still missing were scored
    assert out.read_bytes() == whole and not JobParts(out).dir.exists()


def test_sigkill_at_any_point_then_the_same_command_finishes_the_job(job, tmp_path):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    # The real command in its own process, each chunk slowed down so the kill lands mid-job.
    slow = ("import sys, time\n"
            "from personalize_torch.serving.jobs.job_parts import JobParts\n"
            "from personalize_torch.batch import main\n"
            "real = JobParts.write_chunk\n"
            "def slow(self, k, results):\n"
            "    time.sleep(0.2)\n"
            "    return real(self, k, results)\n"
            "JobParts.write_chunk = slow\n"
            "main(sys.argv[1:])\n")
    cmd = [sys.executable, "-c", slow, "--solution", solution, "--input", str(src), "--output", str(out),
           "--num-results", "5", "--chunk-lines", str(CHUNK), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while len(JobParts(out).done()) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = JobParts(out).done()
    assert 3 <= len(done) < 16 and not out.exists()
    run(solution, src, out)
    assert out.read_bytes() == whole and not JobParts(out).dir.exists()


def test_other_arguments_do_not_mix_into_an_unfinished_job(job, tmp_path, monkeypatch, capsys):
    solution, src, _ = job
    out = tmp_path / "out.jsonl"
    stop_after(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        run(solution, src, out)
    monkeypatch.undo()
    with pytest.raises(SystemExit) as exit_info:
        run(solution, src, out, "--include-seen")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "options.include_seen" in err and "--restart" in err and "Traceback" not in err
    run(solution, src, out, "--include-seen", "--restart")      # starts again: the same as a fresh job
    run(solution, src, tmp_path / "fresh.jsonl", "--include-seen")
    assert out.read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()


def test_a_finished_output_is_replaced_as_personalize_replaces_its_output(job, tmp_path):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier job's output\n")
    run(solution, src, out)
    assert out.read_bytes() == whole


def test_three_shards_then_merge_write_what_one_process_writes(job, tmp_path, capsys):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    run(solution, src, out, "--shard", "0/3")
    run(solution, src, out, "--shard", "2/3")
    assert JobParts(out).done() == {k for k in range(16) if k % 3 != 1} and not out.exists()
    with pytest.raises(SystemExit) as exit_info:                # shard 1/3 has not run: nothing is merged
        run(solution, src, out, "--merge")
    assert exit_info.value.code == 2 and "chunk 1, 4, 7, 10, 13" in capsys.readouterr().err
    run(solution, src, out, "--shard", "1/3")
    run(solution, src, out, "--merge")
    assert out.read_bytes() == whole and not JobParts(out).dir.exists()


def test_torchrun_ranks_shard_the_job_and_rank_0_merges(job, tmp_path, monkeypatch):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("WORLD_SIZE", "3")
    for rank in (2, 1, 0):                     # rank 0 last, so its wait for the others returns at once
        monkeypatch.setenv("RANK", str(rank))
        run(solution, src, out)
        assert out.exists() == (rank == 0)
    assert out.read_bytes() == whole


def test_a_resumed_job_may_use_another_number_of_workers(job, tmp_path, monkeypatch):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    stop_after(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        run(solution, src, out, "--shard", "1/2")
    monkeypatch.undo()
    run(solution, src, out, "--shard", "0/4")
    run(solution, src, out)                    # finishes the rest in this process and merges
    assert out.read_bytes() == whole


def test_num_workers_runs_local_worker_processes(job, tmp_path):
    solution, src, whole = job
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "personalize_torch.batch", "--solution", solution, "--input",
                           str(src), "--output", str(out), "--num-results", "5", "--chunk-lines", str(CHUNK),
                           "--num-workers", "2"], check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == whole
    assert "lines scored" in done.stderr and "shard" not in done.stderr    # workers are quiet


def test_a_failing_worker_stops_the_others():
    started = time.monotonic()
    status, failed = run_workers([[sys.executable, "-c", "import time; time.sleep(120)"],
                                  [sys.executable, "-c", "import sys; sys.exit(3)"]], interval_s=0.05)
    assert (status, failed) == (3, 1) and time.monotonic() - started < 60   # the sleeper was stopped
    assert worker_env(2, {})["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert worker_env(2, {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_worker_command_is_the_same_job():
    argv = ["--solution", "s", "--input", "in", "--output", "o", "--num-results", "7", "--include-seen",
            "--filter", "EXCLUDE ItemID WHERE Items.G IN ($G)", "--filter-values", '{"G": "\\"x\\""}',
            "--job-type", "inference", "--backfill-popular", "--device", "cuda", "--chunk-lines", "99",
            "--num-workers", "3", "--restart"]
    args = parse_args(argv)
    worker = parse_args(worker_command(args, Shard(1, 3))[3:])
    job_fields = {k: v for k, v in vars(args).items() if k not in ("num_workers", "restart", "shard", "quiet")}
    assert {k: vars(worker)[k] for k in job_fields} == job_fields
    assert worker.shard == "1/3" and worker.num_workers == 1 and worker.quiet and not worker.restart


def test_shard_from_the_command_line_and_from_torchrun():
    assert Shard.parse("2/5") == Shard(2, 5) and Shard(2, 5).owns(7) and not Shard(2, 5).owns(8)
    for bad in ("5/5", "1", "a/b", "-1/3"):
        with pytest.raises(ValueError, match="--shard"):
            Shard.parse(bad)
    assert Shard.from_env({"RANK": "1", "WORLD_SIZE": "4"}) == Shard(1, 4)
    assert Shard.from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None and Shard.from_env({}) is None


def test_shard_options_that_cannot_go_together(trained_solution, tmp_path, capsys):
    src = job_input(tmp_path / "in.jsonl", 5)
    for extra, named in ((["--shard", "0/2", "--num-workers", "2"], "--num-workers"),
                         (["--shard", "0/2", "--restart"], "--restart"),
                         (["--shard", "0/2", "--merge"], "--merge"),
                         (["--merge"], "nothing to merge")):
        with pytest.raises(SystemExit) as exit_info:
            run(trained_solution["solution"], src, tmp_path / "o.jsonl", *extra)
        assert exit_info.value.code == 2 and named in capsys.readouterr().err


def test_a_failed_worker_fails_the_job_and_says_how_to_resume(job, tmp_path, monkeypatch, capsys):
    from personalize_torch import batch

    solution, src, _ = job
    monkeypatch.setattr(batch, "run_workers", lambda commands, env, on_tick: (2, 1))
    with pytest.raises(SystemExit) as exit_info:
        main(["--solution", solution, "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
              "--num-workers", "2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "worker 1/2 exited with status 2" in err and "resumes" in err
