"""The Loopcraft test loops an evaluation reads, checked against the protocol.

Either an existing test split (``millivid generate --split test ...``) or one generated on the spot
into ``OUT/test-data`` (resumable, checksummed, the same format). Every video must have the protocol's
resolution, at least ``C + T`` frames, and loops selected for the protocol's context ``C`` (the
selection makes the rollout revisit what the first ``C`` frames showed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.protocol import Protocol


class TestSetError(ValueError):
    """The test set does not fit the protocol; the message says which data to pass or generate."""

    __test__ = False  # not a pytest test class


def generate_command(protocol: Protocol, videos: int) -> str:
    """The ``millivid generate`` command that makes a fitting test split."""
    return (
        f"millivid generate --split test --resolution {protocol.resolution} --frames {protocol.frames} "
        f"--context {protocol.context} --videos {videos} --out DIR"
    )


@dataclass
class TestVideo:
    """The part of one test video the protocol reads.

    Attributes:
        number: video number in the dataset.
        frames: uint8 ``(C + T, R, R, 3)``.
        actions: int64 ``(C + T,)``; action ``i`` led to frame ``i``.
        poses: float32 ``(C + T, 5)`` ``(x, y, z, yaw, pitch)`` after each action.
    """

    __test__ = False  # not a pytest test class

    number: int
    frames: np.ndarray
    actions: np.ndarray
    poses: np.ndarray


class TestSet:
    """``N`` test videos of a dataset folder, read (and checksum-verified) on demand with a small cache.

    Args:
        dataset: an opened ``millivid_env.loopcraft.dataset.VideoDataset``.
        protocol: the protocol the videos were checked against.
        videos: how many (the first ``videos`` finished ones, in order of number).
        cache: videos kept in memory.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, dataset: Any, protocol: Protocol, videos: int, cache: int = 8) -> None:
        self.dataset = dataset
        self.protocol = protocol
        self.numbers: list[int] = list(dataset.indices[:videos])
        self._cache: OrderedDict[int, TestVideo] = OrderedDict()
        self._cache_size = max(1, cache)

    def __len__(self) -> int:
        return len(self.numbers)

    def video(self, k: int) -> TestVideo:
        """Video at position ``k`` (``0 <= k < len(self)``), cut to the protocol's ``C + T`` frames."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        full = self.dataset[k]
        n = self.protocol.frames
        video = TestVideo(self.numbers[k], full.frames[:n], full.actions[:n].astype(np.int64), full.poses[:n])
        self._cache[k] = video
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return video

    def rollout_frames(self, k: int, indices: np.ndarray) -> np.ndarray:
        """uint8 ``(len(indices), R, R, 3)``: frames ``C + indices`` of video ``k``."""
        return self.video(k).frames[self.protocol.context + np.asarray(indices)]

    def describe(self) -> dict[str, Any]:
        """Identity of the test set (for the config fingerprint): folder, config, numbers, checksums."""
        from millivid_env.loopcraft.dataset import read_sidecar

        sums = [read_sidecar(self.dataset.root, n)["sha256"] for n in self.numbers]
        return {
            "root": str(Path(self.dataset.root).resolve()),
            "config": self.dataset.config.to_json(),
            "numbers": self.numbers,
            "sha256": sums,
        }


def open_test_set(path: str | Path, protocol: Protocol, videos: int) -> TestSet:
    """Open a test split and check that it fits ``protocol``.

    Args:
        path: dataset folder written by ``millivid generate --split test``.
        protocol: the evaluation protocol.
        videos: number of videos to evaluate (the first ones); at least 2 (the random-frame bound
            takes frames from other videos).

    Raises:
        TestSetError: not a dataset, a train split, wrong resolution, too short, loops selected for
            another context, or fewer finished videos than asked for.
    """
    from millivid_env.loopcraft.dataset import DatasetCorruptedError, open_dataset

    if videos < 2:
        raise TestSetError(f"--videos must be >= 2 (the random-frame bound uses other videos), got {videos}")
    fix = (
        "pass a fitting test split with --data, or omit --data to generate one "
        f"({generate_command(protocol, videos)})"
    )
    try:
        dataset = open_dataset(path)
    except (FileNotFoundError, DatasetCorruptedError) as error:
        raise TestSetError(f"{error}; {fix}") from error
    config = dataset.config
    problems = []
    if config.split != "test":
        problems.append(f"it is a {config.split!r} split (random walks), not test loops")
    if config.resolution != protocol.resolution:
        problems.append(
            f"its frames are {config.resolution} px, protocol {protocol.name!r} needs {protocol.resolution}"
        )
    if config.frames < protocol.frames:
        problems.append(
            f"its videos have {config.frames} frames, protocol {protocol.name!r} needs C + T = "
            f"{protocol.context} + {protocol.horizon} = {protocol.frames}"
        )
    if config.split == "test" and config.context != protocol.context:
        problems.append(
            f"its loops were selected to revisit a context of {config.context} frames, the protocol's "
            f"context is {protocol.context}"
        )
    if problems:
        raise TestSetError(
            f"test set {path} does not fit protocol {protocol.name!r}: {'; '.join(problems)}; {fix}"
        )
    if len(dataset) < videos:
        raise TestSetError(
            f"test set {path} has {len(dataset)} finished videos but --videos asks for {videos}; pass "
            f"--videos {len(dataset)} or generate more ({generate_command(protocol, videos)})"
        )
    return TestSet(dataset, protocol, videos)


def generate_test_set(
    out: str | Path, protocol: Protocol, videos: int, seed: int = 0, progress: bool = True
) -> Path:
    """Generate (or resume) ``videos`` test loops fitting ``protocol`` into ``out``; returns ``out``.

    Args:
        out: dataset folder (created; an existing one must hold the same config).
        protocol: decides resolution, ``C + T`` frames and the loop-selection context ``C``.
        videos: number of test loops.
        seed: base seed of the test split.
        progress: show a progress bar.
    """
    from millivid_env.loopcraft.generate import generate_dataset, make_config

    config = make_config("test", protocol.resolution, protocol.frames, context=protocol.context, seed=seed)
    generate_dataset(out, config, videos, progress=progress)
    return Path(out)
