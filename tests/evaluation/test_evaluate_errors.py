"""Bad input to the evaluation: clear errors that say what to pass (no rollout runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.metric_setup import MetricWeightsError, build_metrics
from evaluation.metrics import ENV_ALEXNET
from evaluation.protocol import BUCKETS, get_protocol
from evaluation.runner import Evaluation, EvaluationSettings, donors, strip_plan
from evaluation.systems import SystemError_, parse_assignments, resolve_files, resolve_systems
from evaluation.testset import TestSetError, generate_test_set, open_test_set
from millivid_env.cli import main
from models.testing import save_tiny_world_model

PROTOCOL = get_protocol("loopcraft-64", 96, 6)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_tiny_world_model(tmp_path_factory.mktemp("tiny"))


def test_protocol_buckets_are_thirds_of_the_horizon():
    edges = get_protocol("loopcraft-64").bucket_edges()
    assert list(edges) == list(BUCKETS)
    assert edges == {"short": (0, 128), "medium": (128, 256), "long": (256, 384)}
    assert get_protocol("paper-256").bucket_edges()["long"] == (512, 768)
    assert not PROTOCOL.standard and PROTOCOL.name == "loopcraft-64+C96T6"
    with pytest.raises(ValueError, match="valid protocols"):
        get_protocol("paper-512")


def test_missing_default_checkpoint_names_the_option_to_pass(tmp_path, monkeypatch):
    (spec,) = resolve_systems(["millivid"], get_protocol("loopcraft-64"))
    assert spec.checkpoint == "loopcraft-64-millivid" and spec.default_checkpoint
    monkeypatch.setattr("models.checkpoints.BUNDLED_DIR", tmp_path / "no-bundled-models")
    with pytest.raises(SystemError_, match="--checkpoint-for millivid=DIR"):
        resolve_files(spec)


def test_bad_system_options():
    with pytest.raises(SystemError_, match="SYSTEM=NAME_OR_DIR"):
        parse_assignments(["millivid"], "--checkpoint-for")
    with pytest.raises(SystemError_, match="unknown system"):
        parse_assignments(["sora=x"], "--checkpoint-for")
    with pytest.raises(SystemError_, match="not evaluated"):
        resolve_systems(["millivid"], PROTOCOL, {"framepack": "x"})


def test_checkpoint_of_another_layout_is_refused(tiny, tmp_path):
    ae, dit = tiny
    systems = resolve_systems(
        ["full-resolution"], get_protocol("paper-256"), {"full-resolution": str(dit)}, autoencoder=str(ae)
    )
    with pytest.raises(SystemError_, match="needs 'paper-256'.*--protocol loopcraft-64"):
        Evaluation(get_protocol("paper-256"), systems, None, str(tmp_path))  # type: ignore[arg-type]


def test_test_set_that_does_not_fit_the_protocol(tmp_path, capsys, tiny):
    short = generate_test_set(tmp_path / "short", get_protocol("loopcraft-64", 96, 3), 2, progress=False)
    with pytest.raises(TestSetError, match="needs C \\+ T = 96 \\+ 6 = 102.*millivid generate --split test"):
        open_test_set(short, PROTOCOL, 2)
    small = generate_test_set(tmp_path / "small", get_protocol("loopcraft-64", 96, 6), 2, progress=False)
    with pytest.raises(TestSetError, match="--videos 2"):
        open_test_set(small, PROTOCOL, 3)
    with pytest.raises(TestSetError, match="context is 128"):
        open_test_set(small, get_protocol("loopcraft-64", 128, 6), 2)  # type: ignore[arg-type]
    with pytest.raises(TestSetError, match="not a millivid video dataset"):
        open_test_set(tmp_path / "nothing", PROTOCOL, 2)
    ae, dit = tiny
    args = ["evaluate", "--systems", "full-resolution", "--checkpoint-for", f"full-resolution={dit}"]
    args += ["--autoencoder", str(ae), "--data", str(short), "--context", "96", "--frames", "6"]
    assert main([*args, "--videos", "2", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "does not fit protocol" in capsys.readouterr().err


def test_missing_metric_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_ALEXNET, raising=False)
    with pytest.raises(MetricWeightsError, match="--alexnet-weights"):
        build_metrics(lpips="lpips-alex")
    with pytest.raises(MetricWeightsError, match="--alexnet-weights"):
        build_metrics(lpips="auto", frechet="alex")
    with pytest.raises(MetricWeightsError, match="not found"):
        build_metrics(alexnet_weights=str(tmp_path / "alexnet.pth"))
    suite, features = build_metrics()
    assert (
        suite.labels["lpips"].startswith("ST-LPIPS") and features is not None and features.name == "FD-STAlex"
    )


def test_settings_defaults_and_helpers():
    assert EvaluationSettings().seed == 0
    picks = donors(number=5, position=1, videos=3, horizon=200, seed=0)
    assert set(picks.tolist()) == {0, 2}
    assert (picks == donors(5, 1, 3, 200, 0)).all()
    import numpy as np

    from evaluation.revisits import RevisitTolerance

    poses = np.zeros((40, 5), np.float32)
    poses[:, 0] = np.r_[np.arange(20), np.arange(20)[::-1]]  # out along x and back
    plan = strip_plan(poses, 20, 2, RevisitTolerance(0.5, 10, 1))
    assert plan["revisit_mask"].all() and list(plan["strip_index"]) == [0, 19]
    assert list(plan["strip_context"]) == [19, 0]
