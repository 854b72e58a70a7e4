"""`millivid evaluate` on tiny random checkpoints and three tiny generated test loops (C = 96, T = 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

import evaluation.runner as runner
import evaluation.store as store_module
from evaluation.baselines import nearest_pose_frames
from evaluation.metrics import LPIPS_NAME, ST_LPIPS_NAME, psnr
from evaluation.protocol import get_protocol
from evaluation.revisits import RevisitTolerance
from evaluation.runner import Evaluation, EvaluationSettings
from evaluation.store import (
    GROUND_TRUTH,
    LAST_CONTEXT_FRAME,
    ORACLE_LOOKUP,
    RANDOM_FRAMES,
    ConfigMismatchError,
)
from evaluation.systems import SYSTEMS, resolve_systems
from evaluation.testset import generate_test_set, open_test_set
from millivid_env.cli import COMMANDS, main
from models.testing import save_tiny_world_model

CONTEXT, HORIZON, VIDEOS = 96, 6, 3
PROTOCOL = get_protocol("loopcraft-64", CONTEXT, HORIZON)
LOOSE = ["--revisit-distance", "100", "--revisit-yaw", "180", "--revisit-gap", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny random checkpoints, a generated test split, and one finished evaluation over them."""
    root = tmp_path_factory.mktemp("evaluate")
    ae, dit = save_tiny_world_model(root / "model")
    data = generate_test_set(root / "data", PROTOCOL, VIDEOS, progress=False)
    checkpoints = [arg for s in SYSTEMS for arg in ("--checkpoint-for", f"{s}={dit}")]
    common = ["--autoencoder", str(ae), *checkpoints, "--context", str(CONTEXT), "--frames", str(HORIZON)]
    common += [
        "--data",
        str(data),
        "--videos",
        str(VIDEOS),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--no-progress",
    ]
    out = root / "eval"
    assert main(["evaluate", *common, *LOOSE, "--out", str(out), "--json", str(root / "copy.json")]) == 0
    return SimpleNamespace(ae=ae, dit=dit, data=data, out=out, common=common, root=root)


@pytest.fixture
def rolled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of videos of every batched rollout the evaluation runs (``runner.imagine`` counted)."""
    counts: list[int] = []
    real = runner.imagine

    def counting(world, frames, *args, **kwargs):
        counts.append(len(frames))
        return real(world, frames, *args, **kwargs)

    monkeypatch.setattr(runner, "imagine", counting)
    return counts


def test_command_is_registered():
    assert COMMANDS["evaluate"].module == "evaluation.evaluate_cli"


def test_report_files_and_structure(tiny):
    report = json.loads((tiny.out / "report.json").read_text())
    assert report == json.loads((tiny.root / "copy.json").read_text())
    assert report["videos"] == VIDEOS and report["protocol"]["horizon"] == HORIZON
    assert report["metrics"]["lpips"]["label"] in (LPIPS_NAME, ST_LPIPS_NAME)
    assert report["metrics"]["fd"]["label"] == "FD-STAlex"
    kinds = {key: r["kind"] for key, r in report["results"].items()}
    assert [k for k, v in kinds.items() if v == "system"] == list(SYSTEMS)
    assert sorted(kinds.values()).count("upper-bound") == 1 and kinds["random-frames"] == "lower-bound"
    assert kinds["last-context-frame"] == "baseline" and kinds["oracle-lookup"] == "baseline"
    assert report["results"]["oracle-lookup"]["label"] == runner.ORACLE_LABEL
    for result in report["results"].values():
        assert set(result["buckets"]) == {"short", "medium", "long", "all", "revisits"}
        for bucket in result["buckets"].values():
            assert {"psnr", "ssim", "lpips", "fd"} <= set(bucket)
            assert bucket["lpips"]["n"] == VIDEOS and bucket["lpips"]["mean"] is not None
        assert all(len(result["curves"][m]) == HORIZON for m in ("psnr", "ssim", "lpips"))
    assert [s["name"] for s in report["systems"]] == list(SYSTEMS)
    assert report["machine"]["cpu"] and report["revisit_frames_per_video"] == [HORIZON] * VIDEOS
    md = (tiny.out / "report.md").read_text()
    assert report["metrics"]["lpips"]["label"] in md and "| short | medium | long | all | revisits |" in md
    assert f"{VIDEOS} test videos" in md and str(tiny.dit) in md
    for name in ("psnr", "ssim", "lpips", "fd", "overview"):
        assert (tiny.out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (tiny.out / "strips" / "revisits.png").is_file()


def test_collapse_references_give_the_frechet_distance_a_scale(tiny):
    from evaluation.aggregate import collapse_frames

    frames = collapse_frames(64, frames=8)
    assert {k: v.shape for k, v in frames.items()} == {"flat": (8, 64, 64, 3), "noise": (8, 64, 64, 3)}
    assert (frames["flat"] == frames["flat"][:, :1, :1]).all() and frames["noise"].std() > 60
    report = json.loads((tiny.out / "report.json").read_text())
    collapse = report["collapse_references"]
    random_frames = report["results"]["random-frames"]["buckets"]["all"]["fd"]
    for name in ("flat", "noise"):
        assert set(collapse[name]) == {"short", "medium", "long", "all"}
        # Real frames of other loops are far closer to the truth than any collapsed rollout.
        assert collapse[name]["all"] > 5 * random_frames > 0
    md = (tiny.out / "report.md").read_text()
    assert "## Staying in distribution" in md and "| collapse: noise frames |" in md


def test_bounds_use_the_autoencoder_and_other_videos(tiny):
    from models.world_model import WorldModel

    report = json.loads((tiny.out / "report.json").read_text())
    bound = next(k for k, r in report["results"].items() if r["kind"] == "upper-bound")
    test_set = open_test_set(tiny.data, PROTOCOL, VIDEOS)
    world = WorldModel.load(str(tiny.ae), str(tiny.dit), "cpu")
    for k, number in enumerate(test_set.numbers):
        truth = test_set.video(k).frames[CONTEXT:]
        stored = np.load(tiny.out / "per_video" / bound / f"{number:06d}.npz")
        expected = psnr(world.decode_frames(world.encode_frames(truth), 0), truth).numpy()
        np.testing.assert_allclose(stored["psnr"], expected, atol=0.05)
        assert stored["psnr"].max() < 60  # not the raw truth
        random = np.load(tiny.out / "per_video" / "random-frames" / f"{number:06d}.npz")
        assert (random["donor"] != number).all()
        donor_frames = np.stack(
            [
                test_set.video(test_set.numbers.index(d)).frames[CONTEXT + i]
                for i, d in enumerate(random["donor"])
            ]
        )
        np.testing.assert_allclose(random["psnr"], psnr(donor_frames, truth).numpy(), rtol=1e-5)
        # The baseline holds the last true context frame.
        held = np.load(tiny.out / "per_video" / "last-context-frame" / f"{number:06d}.npz")
        last = np.repeat(test_set.video(k).frames[CONTEXT - 1 : CONTEXT], len(truth), axis=0)
        np.testing.assert_allclose(held["psnr"], psnr(last, truth).numpy(), rtol=1e-5)
        # The oracle look-up shows, per rollout frame, the context frame of nearest true pose.
        oracle = np.load(tiny.out / "per_video" / "oracle-lookup" / f"{number:06d}.npz")
        poses = test_set.video(k).poses
        index = nearest_pose_frames(poses[:CONTEXT], poses[CONTEXT:])
        np.testing.assert_array_equal(oracle["context_index"], index)
        assert (index < CONTEXT).all()
        looked_up = test_set.video(k).frames[index]
        np.testing.assert_allclose(oracle["psnr"], psnr(looked_up, truth).numpy(), rtol=1e-5)
        assert oracle["lpips"].shape == (HORIZON,) and oracle["features"].shape[0] == HORIZON
    md = (tiny.out / "report.md").read_text()
    assert "| last context frame held *(baseline)* |" in md
    assert "| context frame nearest to the true pose (oracle look-up) *(baseline)* |" in md
    assert "how far a model is from a perfect look-up of what it was shown" in md


def test_a_folder_from_before_the_oracle_computes_only_the_oracle(tiny, tmp_path, monkeypatch):
    """An evaluation folder written without the oracle look-up gains it on the next run; nothing else
    is recomputed."""
    out = shutil.copytree(tiny.out, tmp_path / "eval")
    shutil.rmtree(out / "per_video" / ORACLE_LOOKUP)
    document = json.loads((out / "evaluation.json").read_text())
    del document["entries"][ORACLE_LOOKUP]
    (out / "evaluation.json").write_text(json.dumps(document))
    monkeypatch.setattr(runner, "imagine", lambda *a, **k: pytest.fail("rolled out"))
    stamps = {p: p.stat().st_mtime_ns for p in (out / "per_video").rglob("*.npz")}
    assert main(["evaluate", *tiny.common, *LOOSE, "--out", str(out)]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert sorted(p.name for p in (out / "per_video" / ORACLE_LOOKUP).glob("*.npz")) == sorted(
        p.name for p in (out / "per_video" / LAST_CONTEXT_FRAME).glob("*.npz")
    )
    recorded = json.loads((out / "evaluation.json").read_text())["entries"][ORACLE_LOOKUP]
    assert recorded["config"]["degrees_per_block"] == 30.0
    report = json.loads((out / "report.json").read_text())
    assert (
        report["results"][ORACLE_LOOKUP]
        == json.loads((tiny.out / "report.json").read_text())["results"][ORACLE_LOOKUP]
    )


def test_rerun_skips_everything_and_config_change_is_refused(tiny, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(runner, "imagine", lambda *a, **k: calls.append(a) or pytest.fail("rolled out"))
    stamps = {p: p.stat().st_mtime_ns for p in (tiny.out / "per_video").rglob("*.npz")}
    assert main(["evaluate", *tiny.common, *LOOSE, "--out", str(tiny.out)]) == 0
    assert not calls and stamps == {p: p.stat().st_mtime_ns for p in stamps}
    capsys.readouterr()
    assert main(["evaluate", *tiny.common, *LOOSE, "--seed", "1", "--out", str(tiny.out)]) == 2
    error = capsys.readouterr().err
    assert "another config" in error and "sampling.seed: 0 vs 1" in error and "another --out" in error
    # Context noise is part of the config (and absent from it at 0, so older folders still match).
    assert "context_noise" not in json.loads((tiny.out / "evaluation.json").read_text())["config"]["sampling"]
    assert main(["evaluate", *tiny.common, *LOOSE, "--context-noise", "0.25", "--out", str(tiny.out)]) == 2
    assert "sampling.context_noise: None vs 0.25" in capsys.readouterr().err
    assert main(["evaluate", *tiny.common, "--context-noise", "1.5", "--out", str(tiny.out)]) == 2
    assert "--context-noise must lie in [0, 1) (0 = clean context), got 1.5" in capsys.readouterr().err
    # So is the guidance scale (1.0, the default, was always written).
    assert main(["evaluate", *tiny.common, *LOOSE, "--guidance-scale", "2", "--out", str(tiny.out)]) == 2
    assert "sampling.guidance_scale: 1.0 vs 2.0" in capsys.readouterr().err
    assert main(["evaluate", *tiny.common, "--guidance-scale", "0", "--out", str(tiny.out)]) == 2
    assert "--guidance-scale must be a finite number > 0 (1 = none), got 0.0" in capsys.readouterr().err


def test_context_noise_and_guidance_reach_the_rollout(tiny, tmp_path, monkeypatch):
    seen = []
    real = runner.imagine

    def spy(*args, **kwargs):
        seen.append((kwargs["context_t"], kwargs["guidance_scale"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "imagine", spy)
    out = tmp_path / "noisy"
    flags = ["--context-noise", "0.25", "--guidance-scale", "1.5"]
    assert main(["evaluate", *tiny.common, *LOOSE, *flags, "--out", str(out)]) == 0
    assert seen and set(seen) == {(0.25, 1.5)}
    report = json.loads((out / "report.json").read_text())
    assert report["sampling"]["context_noise"] == 0.25 and report["sampling"]["guidance_scale"] == 1.5
    text = (out / "report.md").read_text()
    assert "classifier-free guidance scale 1.5, context shown at noise time 0.25" in text


def test_killed_evaluation_continues_where_it_stopped(tiny, tmp_path, rolled):
    checkpoints = {s: str(tiny.dit) for s in SYSTEMS[1:]}
    systems = resolve_systems(
        ["framepack", "full-resolution"], PROTOCOL, checkpoints, autoencoder=str(tiny.ae)
    )
    settings = EvaluationSettings(
        steps=1, batch_size=2, device="cpu", strip_tolerance=RevisitTolerance(100, 180, 1)
    )
    test_set = open_test_set(tiny.data, PROTOCOL, VIDEOS)

    def kill(entry: str, number: int) -> None:
        if entry == "framepack" and number == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Evaluation(PROTOCOL, systems, test_set, str(tmp_path), settings, progress=False).run(on_saved=kill)
    assert rolled == [2]  # first batch (videos 0, 1) rolled out, both saved before the kill
    evaluation = Evaluation(PROTOCOL, systems, test_set, str(tmp_path), settings, progress=False)
    assert evaluation.pending()["framepack"] == [2]
    done = evaluation.run()
    assert done["framepack"] == [2] and done["full-resolution"] == [0, 1, 2] and rolled == [2, 1, 2, 1]
    assert not any(evaluation.pending().values())
    other = EvaluationSettings(
        steps=2, batch_size=2, device="cpu", strip_tolerance=RevisitTolerance(100, 180, 1)
    )
    with pytest.raises(ConfigMismatchError, match="sampling.steps: 1 vs 2"):
        Evaluation(PROTOCOL, systems, test_set, str(tmp_path), other, progress=False)


def test_folder_grows_with_more_systems(tiny, tmp_path, rolled):
    """A second run with one more system rolls out only that system and reuses the stored results."""
    settings = EvaluationSettings(
        steps=1, batch_size=3, device="cpu", strip_tolerance=RevisitTolerance(100, 180, 1)
    )
    test_set = open_test_set(tiny.data, PROTOCOL, VIDEOS)
    checkpoints = {s: str(tiny.dit) for s in SYSTEMS}

    def evaluation(names: list[str]) -> Evaluation:
        given = {name: checkpoints[name] for name in names}
        systems = resolve_systems(names, PROTOCOL, given, autoencoder=str(tiny.ae))
        return Evaluation(PROTOCOL, systems, test_set, str(tmp_path), settings, progress=False)

    first = evaluation(["framepack"])
    first.run()
    stored = {n: first.store.load("framepack", n) for n in test_set.numbers}
    assert rolled == [VIDEOS]
    both = evaluation(["framepack", "full-resolution"])
    assert both.pending()["framepack"] == [] and both.pending()["full-resolution"] == [0, 1, 2]
    assert both.pending()[GROUND_TRUTH] == []  # the bounds and the reference are shared too
    both.run()
    assert rolled == [VIDEOS, VIDEOS]  # full-resolution alone
    for number, arrays in stored.items():
        again = both.store.load("framepack", number)
        assert arrays is not None and again is not None
        for name, value in arrays.items():
            np.testing.assert_array_equal(again[name], value)
    recorded = json.loads((tmp_path / "evaluation.json").read_text())
    assert recorded["format_version"] == 3 and "systems" not in recorded["config"]
    assert {
        "framepack",
        "full-resolution",
        GROUND_TRUTH,
        RANDOM_FRAMES,
        LAST_CONTEXT_FRAME,
        ORACLE_LOOKUP,
    } <= set(recorded["entries"])
    assert evaluation(["full-resolution"]).pending()["full-resolution"] == []
    # A system given another checkpoint (other weights) is an entry of another fingerprint: recomputed.
    other = shutil.copytree(tiny.dit, tmp_path.parent / "other")
    weights = load_file(str(other / "model.safetensors"))
    save_file({k: v * 1.01 for k, v in weights.items()}, str(other / "model.safetensors"))
    checkpoints["framepack"] = str(other)
    again = evaluation(["framepack"])
    assert again.pending()["framepack"] == [0, 1, 2] and again.pending()[GROUND_TRUTH] == []


def test_folders_of_the_single_fingerprint_format_are_converted(tiny, tmp_path):
    """Results written under format 1 (one fingerprint of the whole config) stay valid."""
    settings = EvaluationSettings(
        steps=1, batch_size=3, device="cpu", strip_tolerance=RevisitTolerance(100, 180, 1)
    )
    test_set = open_test_set(tiny.data, PROTOCOL, VIDEOS)
    systems = resolve_systems(["framepack"], PROTOCOL, {"framepack": str(tiny.dit)}, autoencoder=str(tiny.ae))
    done = Evaluation(PROTOCOL, systems, test_set, str(tmp_path), settings, progress=False)
    done.run()
    config = done.config()
    old_print = store_module.fingerprint(config)
    for path in (tmp_path / "per_video").rglob("*.npz"):  # back to format 1
        with np.load(path) as archive:
            arrays = dict(archive)
        arrays["fingerprint"] = np.array(old_print)
        np.savez(path, **arrays)
    legacy = {"format": "millivid-evaluation", "format_version": 1, "fingerprint": old_print}
    legacy["config"] = config
    (tmp_path / "evaluation.json").write_text(json.dumps(legacy))
    reopened = Evaluation(PROTOCOL, systems, test_set, str(tmp_path), settings, progress=False)
    assert not any(reopened.pending().values())
    assert json.loads((tmp_path / "evaluation.json").read_text())["format_version"] == 3


def test_results_follow_the_weights_not_their_names(tiny, tmp_path):
    """The same files under another folder (a renamed checkpoint) keep their results, and a folder of
    format 2 (stamps over the names and folders) is converted without recomputing anything."""
    settings = EvaluationSettings(
        steps=1, batch_size=3, device="cpu", strip_tolerance=RevisitTolerance(100, 180, 1)
    )
    test_set = open_test_set(tiny.data, PROTOCOL, VIDEOS)
    out = tmp_path / "eval"

    def evaluation(dit: Path) -> Evaluation:
        systems = resolve_systems(["framepack"], PROTOCOL, {"framepack": str(dit)}, autoencoder=str(tiny.ae))
        return Evaluation(PROTOCOL, systems, test_set, str(out), settings, progress=False)

    evaluation(tiny.dit).run()
    renamed = shutil.copytree(tiny.dit, tmp_path / "renamed")
    assert not any(evaluation(renamed).pending().values())
    document = json.loads((out / "evaluation.json").read_text())
    shared = document["config"]
    for key, record in document["entries"].items():  # back to format 2
        old = store_module._v2_fingerprint(shared, key, record["config"])
        record["fingerprint"] = old
        for path in (out / "per_video" / key).glob("*.npz"):
            with np.load(path) as archive:
                arrays = dict(archive)
            arrays["fingerprint"] = np.array(old)
            np.savez(path, **arrays)
    document["format_version"] = 2
    (out / "evaluation.json").write_text(json.dumps(document))
    assert not any(evaluation(renamed).pending().values())
    assert json.loads((out / "evaluation.json").read_text())["format_version"] == 3


def test_cached_metric_path_equals_one_shot_scoring(tiny, tmp_path, monkeypatch):
    """Truth features computed once per video (one AlexNet pass per frame for LPIPS and Fréchet) give
    exactly the stored results of scoring every entry from scratch, as before the cache."""
    (spec,) = resolve_systems(["framepack"], PROTOCOL, {"framepack": str(tiny.dit)}, autoencoder=str(tiny.ae))
    settings = EvaluationSettings(
        steps=1, batch_size=2, device="cpu", strip_tolerance=RevisitTolerance(100, 180, 1)
    )
    test_set = open_test_set(tiny.data, PROTOCOL, VIDEOS)

    def one_shot(self, k: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        truth = self.test_set.video(k).frames[CONTEXT:]
        values = {name: v.numpy().astype(np.float32) for name, v in self.suite(frames, truth).items()}
        values["features"] = self.features(frames).cpu().numpy().astype(np.float32)
        values["strip_frames"] = frames[self._strip(k)["strip_index"]]
        return values

    cached = Evaluation(PROTOCOL, [spec], test_set, str(tmp_path / "cached"), settings, progress=False)
    network = cached.suite.metrics["lpips"]
    assert cached.features is not None and cached.features.network is network
    passes: list[int] = []
    real = network.feature_maps
    monkeypatch.setattr(network, "feature_maps", lambda x: passes.append(len(x)) or real(x))
    cached.run()
    entries = [e.key for e in cached.entries]  # framepack, autoencoded-*, random-frames, ground-truth
    # One AlexNet pass over every scored entry's frames and one over the truth (was 3 per entry + 1).
    assert sum(passes) == len(entries) * VIDEOS * HORIZON
    monkeypatch.undo()
    with monkeypatch.context() as patch:
        patch.setattr(Evaluation, "_score", one_shot)
        Evaluation(PROTOCOL, [spec], test_set, str(tmp_path / "one-shot"), settings, progress=False).run()
    for entry in entries:
        for number in test_set.numbers:
            new = np.load(tmp_path / "cached" / "per_video" / entry / f"{number:06d}.npz")
            old = np.load(tmp_path / "one-shot" / "per_video" / entry / f"{number:06d}.npz")
            assert set(new.files) == set(old.files)
            for name in set(new.files) - {"rollout_seconds"}:
                np.testing.assert_array_equal(new[name], old[name], err_msg=f"{entry}/{number}: {name}")


def test_copied_frames_and_the_short_memory_control(tiny, tmp_path, monkeypatch):
    """--warp shows every system through the copying view; the control reads a 5-frame memory."""
    from models.checkpoints import save_checkpoint
    from models.warp import ActionWarp, WarpConfig

    warp = tmp_path / "warp"
    save_checkpoint(ActionWarp(WarpConfig(resolution=64)), warp)
    windows = []
    real = runner.imagine_copied

    def spy(*args, **kwargs):
        windows.append((args[5], kwargs["context_window"], kwargs["view"].capacity))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "imagine_copied", spy)
    out = tmp_path / "copied"
    systems = ["--systems", "millivid", "framepack", "full-resolution", "millivid-short-memory"]
    args = ["evaluate", *tiny.common, *LOOSE, *systems, "--warp", str(warp), "--out", str(out)]
    assert main([*args, "--view", '{"fill_fraction": 0.5}']) == 0
    assert set(windows) == {
        ("millivid", None, 512),
        ("framepack", None, 512),
        ("full-resolution", None, 512),
        ("millivid", 5, 5),
    }
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["systems"]]
    assert names == ["millivid", "framepack", "full-resolution", "millivid-short-memory"]
    assert report["systems"][3]["memory_window"] == 5 and "memory_window" not in report["systems"][0]
    assert report["systems"][3]["files"] == report["systems"][0]["files"]  # the same checkpoint
    # The untrained warp holds the last context frame: with 6 steps the view never needs the model.
    video = open_test_set(tiny.data, PROTOCOL, VIDEOS).video(0)
    for key in ("millivid", "framepack", "millivid-short-memory"):
        arrays = np.load(next((out / "per_video" / key).glob("*.npz")))
        assert arrays["model_filled"].shape == (HORIZON,) and not arrays["model_filled"].any()
    held = report["results"][LAST_CONTEXT_FRAME]["buckets"]["all"]["lpips"]["mean"]
    assert report["results"]["framepack"]["buckets"]["all"]["lpips"]["mean"] == pytest.approx(held, abs=1e-6)
    assert "revisits" in report["results"]["millivid"]["buckets"]
    drew = report["results"]["millivid"]["model_drew"]
    assert drew["fraction"] == 0.0 and drew["lpips"]["n"] == 0  # nothing drawn, nothing scored
    assert "model_drew" not in report["results"][LAST_CONTEXT_FRAME]
    assert "## Where the model drew" in (out / "report.md").read_text()
    assert video.frames.shape[0] == CONTEXT + HORIZON
    # Another view is another config: refused in the same folder.
    assert main([*args, "--view", '{"fill_fraction": 0.4}']) == 2


def test_view_memory_bounded_by_the_token_layout(tiny, tmp_path, monkeypatch):
    """--view-memory layout: each view is bounded by its layout (the rollout's ``layout_memory``)."""
    from models.checkpoints import save_checkpoint
    from models.warp import ActionWarp, WarpConfig

    warp = tmp_path / "warp"
    save_checkpoint(ActionWarp(WarpConfig(resolution=64)), warp)
    calls = {}
    real = runner.imagine_copied

    def spy(*args, **kwargs):
        view = kwargs["view"]
        calls[(args[5], kwargs["context_window"])] = (
            view.capacity,
            view.remember_shown,
            kwargs["layout_memory"],
        )
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "imagine_copied", spy)
    systems = ["--systems", "millivid", "framepack", "full-resolution", "millivid-short-memory"]
    args = [
        "evaluate",
        *tiny.common,
        *LOOSE,
        *systems,
        "--warp",
        str(warp),
        "--view",
        '{"fill_fraction": 0.5}',
    ]
    out = tmp_path / "layout"
    assert main([*args, "--view-memory", "layout", "--out", str(out)]) == 0
    assert calls == {
        ("millivid", None): (512, False, True),
        ("framepack", None): (512, False, True),
        ("full-resolution", None): (512, False, True),
        ("millivid", 5): (5, False, True),
    }
    report = json.loads((out / "report.json").read_text())
    assert report["copying"]["view_memory"] == "layout"
    assert report["copying"]["view_remembers"] == {
        "millivid": "85-148 frames back", "framepack": "64 frames back",
        "full-resolution": "2-3 frames back", "millivid-short-memory": "the last 5 frames",
    }  # fmt: skip
    text = (out / "report.md").read_text()
    assert "view memory bounded by the token layout" in text and "full-resolution 2-3 frames back" in text
    assert "keeps only the context frames its layout" in text
    assert "View settings other than the defaults: `fill_fraction` 0.5." in text
    # The shared memory is another config: refused in the same folder, accepted in a new one.
    assert main([*args, "--out", str(out)]) == 2
    calls.clear()
    assert main([*args, "--out", str(tmp_path / "shared")]) == 0
    assert set(calls.values()) == {(512, False, False), (5, False, False)}
    shared = json.loads((tmp_path / "shared" / "report.json").read_text())
    assert shared["copying"]["view_memory"] == "shared"
    assert shared["copying"]["view_remembers"]["framepack"] == "up to 512 context frames"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--view", '{"fill_fraction": 0.5}'], "pass --warp too"),
        (["--view-memory", "layout"], "--view-memory bounds the copying view's memory: pass --warp too"),
        (["--warp", "WARP", "--view", '{"nope": 1}'], "unknown settings ['nope']"),
        (["--warp", "WARP", "--view", "[1]"], "JSON object"),
        (["--warp", "WARP", "--fill-level", "2"], "full-resolution generates level 0 only"),
        (["--warp", "no-such-warp"], "--warp 'no-such-warp' cannot be loaded"),
    ],
)
def test_copying_options_errors(tiny, tmp_path, capsys, flags, message):
    from models.checkpoints import save_checkpoint
    from models.warp import ActionWarp, WarpConfig

    save_checkpoint(ActionWarp(WarpConfig(resolution=64)), tmp_path / "warp")
    flags = [str(tmp_path / "warp") if f == "WARP" else f for f in flags]
    assert main(["evaluate", *tiny.common, *flags, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_paired_differences_of_the_first_system(tiny):
    """report.json's paired LPIPS: millivid minus each row, per video, with the standard error."""
    report = json.loads((tiny.out / "report.json").read_text())
    paired = report["paired_lpips"]
    assert set(paired) == {"framepack", "full-resolution", RANDOM_FRAMES, LAST_CONTEXT_FRAME, ORACLE_LOOKUP}
    numbers = report["video_numbers"]

    def per_video(key: str) -> np.ndarray:
        return np.array(
            [np.load(tiny.out / "per_video" / key / f"{n:06d}.npz")["lpips"].mean() for n in numbers]
        )

    difference = per_video("millivid") - per_video("framepack")
    assert paired["framepack"]["all"]["mean"] == pytest.approx(difference.mean(), abs=1e-6)
    assert paired["framepack"]["all"]["sem"] == pytest.approx(
        difference.std(ddof=1) / np.sqrt(len(difference)), abs=1e-6
    )
    assert paired["framepack"]["all"]["n"] == VIDEOS
    assert "paired over the videos" in (tiny.out / "report.md").read_text()


def test_report_names_the_view_settings_that_differ_from_the_defaults():
    """Two runs that differ only in a view setting must not read the same in their reports."""
    from evaluation.report import _copying_line

    copying = {
        "warp": "w",
        "fill_level": 0,
        "view_memory": "layout",
        "view_remembers": {"millivid": "85-148"},
    }
    default = _copying_line({**copying, "view": {"fill_fraction": 0.05, "remember_shown": False}})
    assert "View settings" not in default and "keeps only the context frames" in default
    changed = _copying_line({**copying, "view": {"remember_shown": True, "draft_t": 0.6}})
    assert "keeps only the context and shown frames" in changed
    assert changed.endswith("View settings other than the defaults: `remember_shown` true, `draft_t` 0.6.")
