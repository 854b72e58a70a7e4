"""The model half of `millivid demo`: a test loop rolled out by the world-model env, beside the truth.

The first ``C`` frames of a Loopcraft test loop are real context; the env then generates the rest
from the loop's own actions (closed-loop streaming steps, as an agent would see them), and the demo
writes the two videos side by side (ground truth | model) plus a PNG strip of both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from millivid_env.demo import (
    BORDER,
    CONTEXT_COLOUR,
    MONTAGE_SCALE,
    ROLLOUT_COLOUR,
    VIDEO_SCALE,
    upscale,
    write_mp4,
)
from millivid_env.window import side_by_side

__all__ = ["LoopTooShortError", "comparison_strip", "demo_context", "render_model_demo"]

#: Columns of the PNG strip.
STRIP_COLUMNS = 8


class LoopTooShortError(ValueError):
    """The loop has no frame left to generate after the model's context."""


def demo_context(frames: int, min_context: int) -> int:
    """Context frames of the model demo: the protocol's quarter, but at least the memory's depth."""
    return max(frames // 4, min_context)


def comparison_strip(
    truth: np.ndarray, model: np.ndarray, context: int, columns: int = STRIP_COLUMNS
) -> np.ndarray:
    """Two rows (ground truth above, model below) of frames evenly spaced from the last context frame.

    Args:
        truth: uint8 ``(T, R, R, 3)``.
        model: uint8 ``(T, R, R, 3)`` (its first ``context`` frames are the real context).
        context: number of context frames ``C``.
        columns: frames per row.

    Returns:
        uint8 image; context frames framed blue, generated ones orange.
    """
    picks = np.linspace(context - 1, len(truth) - 1, columns).round().astype(int)
    size = truth.shape[1] * MONTAGE_SCALE + 2 * BORDER
    image = np.full((2 * size, columns * size, 3), 255, dtype=np.uint8)
    for row, frames in enumerate((truth, model)):
        for col, index in enumerate(picks):
            top, left = row * size, col * size
            image[top : top + size, left : left + size] = (
                CONTEXT_COLOUR if index < context else ROLLOUT_COLOUR
            )
            tile = upscale(frames[index], MONTAGE_SCALE)
            image[top + BORDER : top + size - BORDER, left + BORDER : left + size - BORDER] = tile
    return image


def render_model_demo(
    out: Path,
    seed: int,
    frames: int,
    autoencoder: str,
    checkpoint: str,
    sampling_steps: int = 8,
    device: str = "auto",
    progress: bool = True,
    warp: str | None = None,
) -> tuple[Path, Path]:
    """Roll a test loop out with the model; write ``out/demo.mp4`` (truth | model) and ``out/strip.png``.

    Args:
        out: output folder.
        seed: dataset seed of the test loop (video 0 of ``millivid generate --split test --seed S``).
        frames: frames of the loop (context included).
        autoencoder: autoencoder checkpoint.
        checkpoint: diffusion checkpoint.
        sampling_steps: sampler evaluations per sub-step.
        device: torch device.
        progress: show a progress bar over the generated frames.
        warp: action-warp checkpoint (frames copied by construction, as the envs do); None: every frame
            is the diffusion model's.

    Returns:
        The video and strip paths.
    """
    import imageio.v2 as imageio
    from tqdm.auto import tqdm

    from millivid_env.loopcraft.generate import make_config, make_video
    from millivid_env.registration import DEFAULT_ENV_ID, MILLIVID_VARIANTS
    from millivid_env.world_model_env import MilliVidEnv

    env = MilliVidEnv(
        checkpoint=checkpoint,
        autoencoder=autoencoder,
        device=device,
        sampling_steps=sampling_steps,
        warp=warp,
        **{
            k: v
            for k, v in MILLIVID_VARIANTS[DEFAULT_ENV_ID].items()
            if k in ("sampler_endpoint", "context_noise")
        },
    )
    context = demo_context(frames, env.simulator.min_context)
    if frames <= context:
        raise LoopTooShortError(
            f"the model demo needs more than {context} frames (its context), got {frames}"
        )
    config = make_config("test", env.observation_space.shape[0], frames, context=context, seed=seed)
    arrays, _ = make_video(config, 0)
    truth, actions = arrays["frames"], arrays["actions"]
    env.reset(seed=seed, options={"context_frames": truth[:context], "context_actions": actions[:context]})
    model = [*truth[:context]]
    for action in tqdm(actions[context:], desc="imagining", unit="frame", disable=not progress):
        model.append(env.step(int(action))[0])
    env.close()
    model = np.stack(model)
    out.mkdir(parents=True, exist_ok=True)
    video_path, strip_path = out / "demo.mp4", out / "strip.png"
    pairs = np.stack([side_by_side([t, m]) for t, m in zip(truth, model, strict=True)])
    write_mp4(video_path, upscale(pairs, VIDEO_SCALE))
    imageio.imwrite(strip_path, comparison_strip(truth, model, context))
    return video_path, strip_path
