import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.training.autoencoder import TrainConfig, train

pytestmark = pytest.mark.usefixtures("ae_one_thread")

REPO = Path(__file__).resolve().parents[2]


def tiny_config(data: Path, out: Path, steps: int, **kw) -> TrainConfig:
    options = dict(
        size="tiny",
        batch_size=4,
        steps=steps,
        warmup_steps=2,
        perceptual_weight=0.0,
        eval_every=2,
        eval_frames=4,
        log_every=1,
        device="cpu",
    )
    options.update(kw)
    return TrainConfig(data=str(data), out=str(out), **options)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / "model" / "model.safetensors"))


def test_resume_is_exact(tiny_dataset: Path, tmp_path: Path):
    result = train(
        tiny_config(tiny_dataset, tmp_path / "straight", 4, perceptual_weight=0.05, perceptual_samples=1)
    )
    assert set(result) == {"psnr_l0", "psnr_l1", "psnr_l2", "psnr_l3"}
    train(tiny_config(tiny_dataset, tmp_path / "resumed", 2, perceptual_weight=0.05, perceptual_samples=1))
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "trainer.json").read_text())["step"] == 2
    train(tiny_config(tiny_dataset, tmp_path / "resumed", 4, perceptual_weight=0.05, perceptual_samples=1))
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # no duplicated steps
    # The model inside the run state is a regular checkpoint.
    from models.checkpoints import load_autoencoder

    assert load_autoencoder(tmp_path / "resumed" / "checkpoint" / "model").config.width == 32


def test_resume_refuses_another_architecture(tiny_dataset: Path, tmp_path: Path):
    train(tiny_config(tiny_dataset, tmp_path / "run", 1))
    with pytest.raises(ValueError, match="another architecture"):
        train(tiny_config(tiny_dataset, tmp_path / "run", 2, variant="cascaded"))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_sigterm_saves_a_checkpoint(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    import models.training.common as common  # the loop driver sets each step's lr

    original = common.set_lr

    def set_lr_then_terminate(optimizers, step, *args, **kwargs):
        if step == 2:  # as if `kill -TERM` arrived during the third step
            os.kill(os.getpid(), signal.SIGTERM)
        return original(optimizers, step, *args, **kwargs)

    monkeypatch.setattr(common, "set_lr", set_lr_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    result = train(tiny_config(tiny_dataset, run, 100000, eval_every=100000))
    assert json.loads((run / "checkpoint" / "trainer.json").read_text())["step"] == 3
    assert set(result) == {"psnr_l0", "psnr_l1", "psnr_l2", "psnr_l3"}  # evaluated where it stopped
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


def test_torchrun_ddp_two_processes_and_resume(tiny_dataset: Path, tmp_path: Path):
    run = tmp_path / "ddp"
    base = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "models.training.autoencoder_cli",
        "--data",
        str(tiny_dataset),
        "--out",
        str(run),
        "--size",
        "tiny",
        "--batch-size",
        "2",
        "--perceptual-weight",
        "0",
        "--eval-every",
        "3",
        "--eval-frames",
        "4",
        "--log-every",
        "1",
        "--threads",
        "1",
        "--warmup-steps",
        "1",
    ]
    out = subprocess.run(base + ["--steps", "3"], capture_output=True, text=True, env=_env(), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    state = json.loads((run / "checkpoint" / "trainer.json").read_text())
    assert state["step"] == 3 and state["frames"] == 3 * 2 * 2  # frames of both processes
    # Resume the DDP run's checkpoint (here in one process; a second torchrun launch works the same way).
    train(tiny_config(tiny_dataset, run, 5, batch_size=2, eval_every=3, eval_frames=4))
    state = json.loads((run / "checkpoint" / "trainer.json").read_text())
    assert state["step"] == 5 and state["frames"] == 12 + 2 * 2
    rows = (run / "log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[-1].split(",")[2] == "16"


def test_all_levels_mode_trains(tiny_dataset: Path, tmp_path: Path):
    result = train(tiny_config(tiny_dataset, tmp_path / "all", 2, all_levels=True, variant="cascaded"))
    assert len(result) == 4
    row = (tmp_path / "all" / "log.csv").read_text().splitlines()[-1].split(",")
    assert row[0] == "2" and row[2] == "8"  # frames count encoded frames, not decodes


def test_fine_plus_random_mode_trains(tiny_dataset: Path, tmp_path: Path):
    result = train(tiny_config(tiny_dataset, tmp_path / "fine", 2, level_sampling="fine-plus-random"))
    assert len(result) == 4
    row = (tmp_path / "fine" / "log.csv").read_text().splitlines()[-1].split(",")
    assert row[0] == "2" and row[2] == "8"


def test_decoded_levels_layouts():
    import numpy as np

    from models.training.autoencoder import decoded_levels

    rng = np.random.default_rng(0)
    assert decoded_levels("all", 4, 2, rng).tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    single = decoded_levels("random", 4, 64, rng)
    assert single.shape == (64,) and set(single.tolist()) == {0, 1, 2, 3}
    pairs = decoded_levels("fine-plus-random", 4, 256, rng).view(256, 2)
    assert (pairs[:, 0] == 0).all()  # level 0 first for every frame ...
    assert set(pairs[:, 1].tolist()) == {1, 2, 3}  # ... then one coarser level, each of them drawn
    assert decoded_levels("fine-plus-random", 1, 3, rng).tolist() == [0, 0, 0, 0, 0, 0]


def test_level_sampling_conflicts_are_named(tiny_dataset: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="--all-levels contradicts --level-sampling fine-plus-random"):
        both = dict(all_levels=True, level_sampling="fine-plus-random")
        train(tiny_config(tiny_dataset, tmp_path / "x", 1, **both))
    with pytest.raises(ValueError, match="unknown --level-sampling 'coarse'"):
        train(tiny_config(tiny_dataset, tmp_path / "y", 1, level_sampling="coarse"))


def test_lr_schedule_warmup_constant_cooldown():
    from models.training.common import set_lr

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    opt.param_groups[0]["base_lr"] = 1.0
    factors = [set_lr([opt], s, warmup=4, total=20, cooldown=5) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0] and factors[10] == 1.0
    assert factors[15:] == [1.0, 0.8, 0.6, 0.4, 0.2] and opt.param_groups[0]["lr"] == 0.2


def test_extending_a_finished_run_rewarms_the_lr(tiny_dataset: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset, run, 3, warmup_steps=1, cooldown_steps=2, eval_every=100))
    train(tiny_config(tiny_dataset, run, 7, warmup_steps=1, cooldown_steps=2, rewarm_steps=3, eval_every=100))
    rows = [r.split(",") for r in (run / "log.csv").read_text().splitlines()]
    column = rows[0].index("lr")
    lrs = {int(r[0]): float(r[column]) for r in rows[1:]}
    base = 2e-3
    # first sitting: cool-down to half at its last step; extension: 1/3, 2/3, 1 of the rate, then cool-down
    assert lrs[3] == pytest.approx(base * 0.5, rel=1e-4)
    assert [lrs[s] / base for s in (4, 5, 6, 7)] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5], rel=1e-4)


def test_decoder_fine_tune_keeps_the_encoder_bit_identical(tiny_dataset: Path, tmp_path: Path):
    train(tiny_config(tiny_dataset, tmp_path / "base", 2))
    base = tmp_path / "base" / "checkpoint" / "model"
    with pytest.raises(ValueError, match="--freeze-encoder keeps the encoder as it is.*--init-from"):
        train(tiny_config(tiny_dataset, tmp_path / "cold", 1, freeze_encoder=True))
    mismatch = r"--init-from .*architecture differs.*'variant': \('hierarchical', 'cascaded'\)"
    with pytest.raises(ValueError, match=mismatch):
        train(tiny_config(tiny_dataset, tmp_path / "other", 1, init_from=str(base), variant="cascaded"))
    train(tiny_config(tiny_dataset, tmp_path / "tuned", 3, init_from=str(base), freeze_encoder=True))
    before, after = weights(tmp_path / "base"), weights(tmp_path / "tuned")
    encoder = ("patch_in.", "enc_level.", "encoder.", "to_latent.")
    frozen = [k for k in before if k.startswith(encoder)]
    trained = [k for k in before if not k.startswith(encoder)]
    assert frozen and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    # Resuming the fine-tune keeps the encoder frozen.
    train(tiny_config(tiny_dataset, tmp_path / "tuned", 4, init_from=str(base), freeze_encoder=True))
    resumed = weights(tmp_path / "tuned")
    assert all(torch.equal(before[k], resumed[k]) for k in frozen)


def test_a_refinement_head_and_decoder_blocks_grown_on_a_checkpoint_start_from_its_reconstructions(
    tiny_dataset: Path, tmp_path: Path
):
    from dataclasses import replace

    from models.autoencoder import HierarchicalAutoencoder
    from models.checkpoints import load_autoencoder
    from models.training.autoencoder import grown_modules
    from models.training.common import initialise_from

    train(tiny_config(tiny_dataset, tmp_path / "base", 2))
    base_dir = str(tmp_path / "base" / "checkpoint" / "model")
    base = load_autoencoder(base_dir).eval()
    config = replace(base.config, refine_channels=4, decoder_depth=base.config.decoder_depth + 2)
    grown = HierarchicalAutoencoder(config).eval()
    ignore, new = grown_modules(base.config, config)
    assert ignore == ("refine_channels", "decoder_depth") and new == ("refine", "decoder.1", "decoder.2")
    initialise_from(grown, base, base_dir, "--x", ignore, new)
    images, levels = torch.rand(3, 3, 64, 64), torch.tensor([0, 1, 3])
    with torch.no_grad():
        pairs = zip(base(images, levels), grown(images, levels), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match="weights do not match the model: .*refine"):
        initialise_from(grown, base, base_dir, "--x", ignore, ("decoder.1", "decoder.2"))
    assert grown_modules(config, base.config) == ((), ())  # nothing is removed: the check then fails
    # The trainer grows both for --init-from + --refine-channels / --decoder-depth; the encoder stays frozen.
    train(tiny_config(tiny_dataset, tmp_path / "grown", 2, init_from=base_dir, freeze_encoder=True,
                      refine_channels=4, decoder_depth=3))  # fmt: skip
    before, after = weights(tmp_path / "base"), weights(tmp_path / "grown")
    assert {k for k in after if k not in before} >= {"refine.conv1.weight", "decoder.2.ada.weight"}
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("patch_in.", "encoder.")))
    grown_dir = str(tmp_path / "grown" / "checkpoint" / "model")
    with pytest.raises(ValueError, match="architecture differs.*--decoder-depth"):
        train(tiny_config(tiny_dataset, tmp_path / "shrunk", 1, init_from=grown_dir, refine_channels=4,
                          decoder_depth=1))  # fmt: skip
