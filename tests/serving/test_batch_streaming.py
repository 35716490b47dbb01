"""Batch jobs stream: one chunk of input in memory at a time, each chunk written before the next is read,
whatever the input size; a progress bar only for large inputs."""

import json
from pathlib import Path

import pytest

from personalize_torch import batch
from personalize_torch.serving.jobs.job_parts import JobParts
from personalize_torch.serving.jobs.jsonlines_job import (
    in_batches,
    is_error_line,
    line_chunks,
    read_lines,
    result_line,
    scan_input,
)

CHUNK = 8


def users(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"userId": f"u{i % 300}"}) + "\n" for i in range(n)))
    return path


def lines_held(solution: str, src: Path, out: Path, monkeypatch) -> list[int]:
    """Run the command, counting input lines read but not yet written out each time a chunk is scored."""
    read, written, held = [0], [0], []

    def counting_read_lines(path):
        for line in read_lines(path):
            read[0] += 1
            yield line

    real_write = JobParts.write_chunk

    def write_chunk(self, k, results):
        assert JobParts(out).done() == set(range(k))      # every earlier chunk is on disk already
        held.append(read[0] - written[0])
        counts = real_write(self, k, results)
        written[0] = read[0]
        return counts

    monkeypatch.setattr(batch, "read_lines", counting_read_lines)
    monkeypatch.setattr(JobParts, "write_chunk", write_chunk)
    batch.main(["--solution", solution, "--input", str(src), "--output", str(out), "--num-results", "3",
                "--chunk-lines", str(CHUNK), "--quiet"])
    monkeypatch.undo()
    return held


def test_memory_holds_one_chunk_whatever_the_input_size(trained_solution, tmp_path, monkeypatch):
    solution = trained_solution["solution"]
    small = lines_held(solution, users(tmp_path / "small.jsonl", 5 * CHUNK), tmp_path / "small.out", monkeypatch)
    large = lines_held(solution, users(tmp_path / "large.jsonl", 50 * CHUNK + 3), tmp_path / "large.out",
                       monkeypatch)
    assert len(small) == 5 and len(large) == 51
    assert max(small) == max(large) == CHUNK                 # not growing with the input
    assert len((tmp_path / "large.out").read_text().splitlines()) == 50 * CHUNK + 3


def test_progress_bar_only_for_large_inputs(trained_solution, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(batch, "PROGRESS_MIN_LINES", 30)
    solution = trained_solution["solution"]
    for n, bar in ((29, False), (30, True)):
        batch.main(["--solution", solution, "--input", str(users(tmp_path / f"{n}.jsonl", n)),
                    "--output", str(tmp_path / f"{n}.out"), "--chunk-lines", str(CHUNK)])
        err = capsys.readouterr().err
        assert ("line/s" in err) == bar, err                   # tqdm's "30.0/30.0 [..., 1.8kline/s]"
        assert f"{n} lines scored" in err
    batch.main(["--solution", solution, "--input", str(tmp_path / "30.jsonl"), "--output", str(tmp_path / "q.out"),
                "--quiet"])
    assert capsys.readouterr().err == ""


def test_lines_chunks_and_output_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"userId": "a"}\r\n\n{"userId": "b"}')          # CRLF, a blank line, no final newline
    assert list(read_lines(src)) == ['{"userId": "a"}', "", '{"userId": "b"}']
    assert scan_input(src)[1] == 3 and scan_input(tmp_path / "in.jsonl")[0] == scan_input(src, block_size=4)[0]
    src.write_bytes(b"")
    assert scan_input(src)[1] == 0
    assert list(line_chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    batches = []
    results = in_batches(lambda lines: (batches.append(len(lines)) or iter({"error": None} for _ in lines)), 4)
    assert len(list(results(["x"] * 10))) == 10 and batches == [4, 4, 2]
    good, bad = result_line({"error": None, "input": {"userId": "a"}, "output": {}}), \
        result_line({"input": "x", "output": None, "error": "bad"})
    assert good == '{"input": {"userId": "a"}, "output": {}, "error": null}\n'   # error last, whatever the order
    assert not is_error_line(good) and is_error_line(bad)


def test_a_line_that_is_not_utf8_is_named(trained_solution, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"userId": "u1"}\n{"userId": "\xff"}\n')
    with pytest.raises(SystemExit) as exit_info:
        batch.main(["--solution", trained_solution["solution"], "--input", str(src), "--output",
                    str(tmp_path / "o.jsonl")])
    assert exit_info.value.code == 2 and "in.jsonl, line 2: not UTF-8" in capsys.readouterr().err
