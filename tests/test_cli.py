"""The `millivid` console script: overview, generate, demo and bench sub-commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest

from evaluation.bench import cli as bench_cli
from evaluation.bench import registry
from millivid_env.cli import COMMANDS, main
from millivid_env.loopcraft.dataset import open_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = ["--frames", "9", "--resolution", "64", "--world-size", "48", "32", "48", "--no-progress"]


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "millivid_env.cli", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    for name in ("generate", "demo", "bench"):
        assert name in COMMANDS and f"  {name}" in result.stdout


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "valid commands" in capsys.readouterr().err


@pytest.mark.parametrize("resolution", ["30", "0", "-16"])
def test_generate_rejects_a_bad_resolution(
    resolution: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    args = ["generate", "--split", "train", "--videos", "1", "--resolution", resolution, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "resolution must be a positive multiple of 8" in err and resolution in err
    assert not out.exists()  # nothing written


def test_generate_writes_resumes_and_refuses_other_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    base = ["generate", "--split", "train", "--videos", "2", "--out", str(out), *TINY]
    assert main(base) == 0
    assert "generated 2" in capsys.readouterr().out
    assert len(open_dataset(out)) == 2
    assert main(base) == 0
    assert "generated 0, already finished 2" in capsys.readouterr().out
    assert main([*base, "--seed", "9"]) == 2
    err = capsys.readouterr().err
    assert "refusing" in err and "seed: 0 vs 9" in err


def test_generate_shard_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    args = ["generate", "--split", "test", "--videos", "3", "--out", str(out), *TINY, "--context", "3"]
    assert main([*args, "--worker-id", "1", "--num-workers", "2"]) == 0
    assert "shard 1 of 2" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="incomplete"):
        assert open_dataset(out).indices == [1]
    assert main([*args, "--worker-id", "2", "--num-workers", "2"]) == 2
    assert "worker_id" in capsys.readouterr().err


def test_demo_writes_an_mp4_and_a_montage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--frames", "24"]) == 0
    printed = capsys.readouterr().out
    video, montage = tmp_path / "demo.mp4", tmp_path / "montage.png"
    assert str(video) in printed and str(montage) in printed
    with imageio.get_reader(video) as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 24 and frames[0].shape == (256, 256, 3)
    grid = imageio.imread(montage)
    assert grid.ndim == 3 and grid.shape[0] > 128 and grid.shape[1] > 128


def test_bench_runs_registered_entries_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real entries take tens of seconds; a fake one checks the harness (numbers are never asserted).
    out, document = _bench_fake_entry("_fake_bench", tmp_path, monkeypatch, capsys)
    assert "machine:" in out and "fake" in out and "1,234" in out and ">= 1000  ok" in out
    assert document["results"]["fake"]["speed"]["value"] == 1234.0
    assert {"cpu", "logical_cores", "numba", "torch"} <= set(document["machine"])


def _bench_fake_entry(
    function: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[str, dict]:
    """Run `millivid bench` on one entry ``fake`` = this module's ``function``: (stdout, JSON document)."""
    monkeypatch.setitem(registry.BENCHMARKS, "fake", registry.Entry(f"{__name__}:{function}", "fake"))
    path = tmp_path / "bench.json"
    assert main(["bench", "--only", "fake", "--json", str(path)]) == 0
    return capsys.readouterr().out, json.loads(path.read_text())


def _fake_bench() -> registry.Results:
    return {"speed": registry.result(1234.0, "frames/s", at_least=1000)}


def test_bench_lists_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "renderer" in listed and "generate" in listed
    assert main(["bench", "--only", "nope"]) == 2
    assert "valid:" in capsys.readouterr().err


def test_bench_table_marks_missed_targets() -> None:
    table = bench_cli.format_table({"x": {"slow": registry.result(5.0, "s", at_most=2.0)}})
    assert "MISSED" in table and "<= 2" in table


def test_rollout_bench_model_is_the_bundled_architecture() -> None:
    # Speed depends on the architecture (width, depth, context attention, GELU), so the rollout
    # entries measure the one the env ships, with random weights.
    from evaluation.bench.rollout_bench import _model
    from millivid_env.registration import ENV_CHECKPOINT
    from models.checkpoints import read_config, resolve_checkpoint
    from models.diffusion import DiTConfig

    bundled = read_config(resolve_checkpoint(ENV_CHECKPOINT), DiTConfig)
    model = _model()
    assert model.config == bundled and not model.training
    assert bundled.gelu == "exact"


def test_bench_reports_a_skipped_entry_without_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, document = _bench_fake_entry("_gpu_only", tmp_path, monkeypatch, capsys)
    assert "skipped fake: needs a CUDA GPU" in out
    assert document["skipped"] == {"fake": "needs a CUDA GPU"} and document["results"] == {}


def _gpu_only() -> registry.Results:
    raise registry.BenchSkipped("needs a CUDA GPU")


def test_paper_rollout_bench_runs_on_a_tiny_model() -> None:
    # The GPU entry's measurement on the CPU with the tiny DiT: the harness, not the numbers.
    from evaluation.bench.gpu_rollout import measure_paper_rollout

    out = measure_paper_rollout(
        "cpu", size="tiny", protocol_steps=2, original_steps=3, batches=(1, 2), repeats=1
    )
    rates = {k: v["value"] for k, v in out.items() if k.endswith("_frames_per_s")}
    assert set(rates) == {
        "ours_equal_steps_b1_frames_per_s",
        "ours_protocol_steps_b1_frames_per_s",
        "original_method_b1_frames_per_s",
        "ours_equal_steps_b2_frames_per_s",
        "ours_protocol_steps_b2_frames_per_s",
    }
    assert all(rate > 0 for rate in rates.values())
    ratio = out["speedup_equal_steps_vs_original_method"]["value"]
    expected = rates["ours_equal_steps_b1_frames_per_s"] / rates["original_method_b1_frames_per_s"]
    assert ratio == pytest.approx(expected)
    assert out["speedup_equal_steps_vs_published"]["target"] == ">= 10"


def test_paper_rollout_bench_is_skipped_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from evaluation.bench.gpu_rollout import bench_paper_rollout_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(registry.BenchSkipped, match="needs a CUDA GPU"):
        bench_paper_rollout_gpu()
