"""FVD features: the I3D TorchScript of StyleGAN-V, only when the user provides its file (``--i3d PATH``).

Method §8.2: 16-frame clips scaled to ``[-1, 1]``, called with ``rescale=False, resize=True,
return_features=True`` -> a 400-d vector per non-overlapping 16-frame window; a window shorter than
16 frames gets a zero vector. The per-window Fréchet distance across videos is then
:func:`evaluation.metrics.frechet.frechet_per_frame_index` on ``(V, windows, 400)`` features.
The weights cannot be downloaded on these machines; nothing here fetches them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from evaluation.metrics._inputs import ArrayLike, to_frames

NAME = "FVD (I3D)"
WINDOW = 16
DIM = 400
_WHERE = (
    "pass --i3d PATH to the TorchScript I3D of StyleGAN-V (i3d_torchscript.pt, e.g. from the Hugging Face "
    "repo kiwhansong/DFoT, metrics_models/i3d_torchscript.pt)"
)


class I3DFeatures:
    """Clip features from the StyleGAN-V I3D TorchScript.

    Args:
        path: the ``i3d_torchscript.pt`` file.
        device: where to run it.

    Raises:
        FileNotFoundError: no path given, or no file there.
        RuntimeError: the file is not a loadable TorchScript module.
    """

    name = NAME

    def __init__(self, path: str | Path | None, device: str | torch.device = "cpu") -> None:
        if path is None or str(path) == "":
            raise FileNotFoundError(f"{NAME} needs I3D weights: {_WHERE}")
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"{NAME}: no I3D weights at {self.path}; {_WHERE}")
        self.device = torch.device(device)
        try:
            self.model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as error:  # torch raises several types for a non-TorchScript file
            raise RuntimeError(
                f"{NAME}: {self.path} is not a TorchScript module ({error}); {_WHERE}"
            ) from error

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """Features of full-length clips.

        Args:
            clips: ``(B, T, 3, H, W)`` float in ``[0, 1]``.

        Returns:
            float32 ``(B, 400)`` on the CPU.
        """
        if clips.ndim != 5 or clips.shape[2] != 3:
            raise ValueError(f"clips must be (B, T, 3, H, W), got {tuple(clips.shape)}")
        x = (clips.to(self.device, torch.float32) * 2 - 1).permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        out = self.model(x, rescale=False, resize=True, return_features=True)
        return out.float().cpu().reshape(clips.shape[0], -1)


def window_features(
    extractor: I3DFeatures, video: ArrayLike, window: int = WINDOW, batch_size: int = 8
) -> torch.Tensor:
    """I3D features of every non-overlapping ``window``-frame window of one video.

    Args:
        extractor: the I3D feature extractor.
        video: ``(T, 3, H, W)`` float in ``[0, 1]`` or uint8 ``(T, H, W, 3)``.
        window: window length (16 as in FVD).
        batch_size: windows per I3D call.

    Returns:
        ``(ceil(T / window), D)`` float32; a final partial window is a zero vector.
    """
    frames, lead = to_frames(video, "video")
    if len(lead) != 1:
        raise ValueError(f"video must be one clip of frames (T, ...), got leading shape {lead}")
    full = frames.shape[0] // window
    clips = frames[: full * window].reshape(full, window, *frames.shape[1:])
    feats = [extractor(chunk) for chunk in clips.split(batch_size)] if full else []
    dim = feats[0].shape[1] if feats else DIM
    out = torch.cat(feats) if feats else torch.zeros(0, dim)
    if frames.shape[0] % window:
        out = torch.cat([out, torch.zeros(1, dim)])
    return out
