"""Invariant tests of the rollout strategies (pure numpy, fast)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.strategies import (
    CONTEXT,
    DENOISED,
    STRATEGY_PRESETS,
    UNSEEN,
    Step,
    Strategy,
    comparable_strategies,
    describe,
    describe_rollout,
    framepack,
    full_resolution,
    get_strategy,
    millivid,
    plan_rollout,
    runs,
    streaming,
)

PAPER_TPL = (256, 64, 16, 4)
CPU_TPL = (64, 16, 4, 1)
BUDGET = {"loopcraft-64": 320, "paper-256": 3840}

# Every preset plus the configurations quoted in method.md §5.
CASES: dict[str, Strategy] = {
    f"{lay}/{name}": s for lay, d in STRATEGY_PRESETS.items() for name, s in d.items()
}
CASES.update(
    {
        "paper/millivid-ablation": millivid((1, 4, 16, 64), 256, PAPER_TPL),
        "paper/framepack-ablation": framepack(1, (1, 4, 16, 64), PAPER_TPL),
        "paper/framepack-3": framepack(3, (3, 12, 48, 192), PAPER_TPL),
        "paper/full-resolution-4": full_resolution(4, PAPER_TPL),
        "cpu/streaming-2": streaming(2, (1, 4, 16, 64), CPU_TPL),
        "cpu/millivid-ratio2": millivid((1, 2, 4, 8), 64, CPU_TPL),
    }
)
# Levels each strategy produces for every generated frame.
PRODUCED_LEVELS = {"full-resolution": (0,), "full-resolution-4": (0,)}


def _produced(key: str, strategy: Strategy) -> tuple[int, ...]:
    return PRODUCED_LEVELS.get(key.split("/")[1], tuple(range(strategy.num_levels)))


# ---------------------------------------------------------------------------------------------------
# Per-step invariants


@pytest.mark.parametrize("layout", list(STRATEGY_PRESETS))
def test_preset_token_budget(layout: str) -> None:
    presets = STRATEGY_PRESETS[layout]
    budget = BUDGET[layout]
    assert set(presets) == {"millivid", "framepack", "streaming", "full-resolution"}
    assert set(presets["millivid"].step_tokens) == {budget}
    for name in ("framepack", "full-resolution"):
        assert len(set(presets[name].step_tokens)) == 1, name
        assert presets[name].tokens_per_step <= budget, name
    assert presets["framepack"].tokens_per_step == budget  # pad-free packing
    assert presets["streaming"].tokens_per_step == budget
    assert all(t <= budget for t in presets["streaming"].step_tokens)


@pytest.mark.parametrize("key", list(CASES))
def test_steps_gap_free_and_past_hierarchical(key: str) -> None:
    strategy = CASES[key]
    for i, step in enumerate(strategy.steps):
        sel = step.selection
        assert sel.dtype == np.int8 and sel.shape == (strategy.num_levels, strategy.chunk_frames)
        touched = np.flatnonzero((sel != UNSEEN).any(axis=0))
        assert len(runs(touched)) == 1, f"step {i}: gap in covered frames"
        # Frames older than the step's denoised frames: exactly one level each, older never finer.
        first_den = int(np.flatnonzero((sel == DENOISED).any(axis=0))[0])
        past = sel[:, touched[0] : first_den]
        assert ((past == CONTEXT).sum(axis=0) == 1).all(), f"step {i}"
        assert not (past == DENOISED).any()
        past_levels = np.argmax(past == CONTEXT, axis=0)
        assert (np.diff(past_levels) <= 0).all(), f"step {i}: past not coarser with age"


@pytest.mark.parametrize("key", [k for k in CASES if "millivid" in k])
def test_millivid_step_structure(key: str) -> None:
    strategy = CASES[key]
    top = strategy.num_levels - 1
    windows = {s.group: int((s.selection == DENOISED).sum()) for s in strategy.steps}
    assert windows[top] == strategy.new_frames
    for step in strategy.steps:
        sel = step.selection
        (target,) = step.denoised_levels
        assert step.group == target
        # Every frame is context at one level at most; each non-target level spends one window.
        assert ((sel == CONTEXT).sum(axis=0) <= 1).all()
        for lv in range(strategy.num_levels):
            if lv != target:
                assert (sel[lv] == CONTEXT).sum() == windows[lv]
        den = runs(step.columns(target, DENOISED))
        assert len(den) == 1 and den[0][1] - den[0][0] == windows[target]
        # Super-resolution conditioning: the next-coarser level covers the denoised window.
        if target < top:
            a, b = den[0]
            assert (sel[target + 1, a:b] == CONTEXT).all()


def test_streaming_substeps_condition_on_coarser_levels() -> None:
    strategy = get_strategy("loopcraft-64", "streaming")
    assert [s.denoised_levels for s in strategy.steps] == [(3,), (2,), (1,), (0,)]
    assert strategy.step_tokens == (236, 240, 256, 320)
    new = strategy.denoising_start
    for step in strategy.steps:
        (target,) = step.denoised_levels
        assert (step.selection[target + 1 :, new] == CONTEXT).all()
        assert (step.selection[:target, new] == UNSEEN).all()
        # The packed past is identical in every sub-step and equal to framepack's.
        fp = get_strategy("loopcraft-64", "framepack").steps[0].selection
        assert np.array_equal(step.selection[:, :new], fp[:, :new])


# ---------------------------------------------------------------------------------------------------
# Simulated rollouts


def _rollout_window(key: str, strategy: Strategy) -> tuple[int, int]:
    if key.startswith("loopcraft-64") or key.startswith("cpu"):
        return 128, 512  # 128 context + 384 generated frames
    start = max(256, strategy.reach)
    return start, start + 768


@pytest.mark.parametrize("key", list(CASES))
def test_rollout_generates_every_cell_once_from_available_context(key: str) -> None:
    strategy = CASES[key]
    start, end = _rollout_window(key, strategy)
    plan = strategy.rollout(start, end)
    assert plan.limit >= end and plan.limit == start + plan.num_chunks * strategy.new_frames
    assert plan.first_frame >= 0
    available = np.zeros((strategy.num_levels, plan.limit), dtype=bool)
    available[:, :start] = True  # ground truth at every level
    generated = np.zeros_like(available)
    count = 0
    for step in plan:
        assert step.index == count
        count += 1
        tokens = sum(strategy.tokens_per_level[lv] for lv in step.levels)
        assert tokens == strategy.step_tokens[step.step]
        f, lv = step.context
        assert f.min() >= 0 and available[lv, f].all(), f"step {step.index}: context not yet available"
        f, lv = step.denoised
        assert f.min() >= start and f.max() < plan.limit
        assert not generated[lv, f].any(), f"step {step.index}: cell generated twice"
        generated[lv, f] = True
        available[lv, f] = True
    assert count == plan.num_steps
    expected = np.zeros_like(generated)
    expected[list(_produced(key, strategy)), start:] = True
    assert np.array_equal(generated, expected)


def test_rollout_errors() -> None:
    strategy = get_strategy("loopcraft-64", "millivid")
    with pytest.raises(ValueError, match="85 frames of context"):
        strategy.rollout(84, 200)
    with pytest.raises(ValueError, match="nothing to generate"):
        plan_rollout(strategy, 128, 128)
    with pytest.raises(IndexError):
        strategy.rollout(128, 192).step(85)


# ---------------------------------------------------------------------------------------------------
# Probabilities


@pytest.mark.parametrize("key", list(CASES))
def test_group_balanced_probabilities(key: str) -> None:
    strategy = CASES[key]
    p = strategy.probabilities
    assert p.shape == (strategy.num_steps,) and np.isclose(p.sum(), 1.0)
    groups = np.array([s.group for s in strategy.steps])
    masses = [p[groups == g].sum() for g in np.unique(groups)]
    assert np.allclose(masses, 1 / len(masses))


def test_millivid_probabilities_by_level() -> None:
    strategy = get_strategy("loopcraft-64", "millivid")
    p = strategy.probabilities
    by_level = {lv: p[[s.group == lv for s in strategy.steps]] for lv in range(4)}
    assert np.allclose(by_level[3], [1 / 4]) and len(by_level[3]) == 1
    for lv, n in ((2, 4), (1, 16), (0, 64)):
        assert len(by_level[lv]) == n and np.allclose(by_level[lv], 1 / (4 * n))
    draws = strategy.sample_steps(np.random.default_rng(0), 20_000)
    assert abs(np.mean(draws == 0) - 0.25) < 0.02


# ---------------------------------------------------------------------------------------------------
# The paper's numbers and tables (method.md §5.5)


def _parse(text: str) -> list[tuple[int, int]]:
    """``"192-239, 303-446"`` (inclusive, as in method.md) -> half-open pairs."""
    out = []
    for part in text.split(","):
        if part.strip():
            a, _, b = part.strip().partition("-")
            out.append((int(a), int(b or a) + 1))
    return out


def _check_row(selection: np.ndarray, offset: int, row: tuple[str, ...]) -> None:
    """``row`` = (target, L0 cell, L1 cell, ...), a cell like ``"den 255-446; ctx 0-191"``."""
    for level, cell in enumerate(row[1:]):
        expected = {"den": "", "ctx": ""}
        for part in cell.split(";"):
            if part.strip():
                role, ranges = part.strip().split(" ", 1)
                expected[role] = ranges
        for role, name in ((DENOISED, "den"), (CONTEXT, "ctx")):
            got = runs(np.flatnonzero(selection[level] == role) + offset)
            assert got == _parse(expected[name]), f"L{level} {name}: {got} != {expected[name]}"


# Relative layout table of method.md §5.5 (frames relative to the chunk start, inclusive ranges):
# step -> (target, L0, L1, L2, L3).
PAPER_RELATIVE = {
    0: ("L3", "ctx 252-254", "ctx 240-251", "ctx 192-239", "den 255-446; ctx 0-191"),
    1: ("L2", "ctx 252-254", "ctx 240-251", "den 255-302; ctx 192-239", "ctx 255-446"),
    2: ("L1", "ctx 252-254", "den 255-266; ctx 240-251", "ctx 255-302", "ctx 192-239, 303-446"),
    3: ("L0", "den 255-257; ctx 252-254", "ctx 255-266", "ctx 240-251, 267-302", "ctx 192-239, 303-446"),
    4: (
        "L0",
        "den 258-260; ctx 255-257",
        "ctx 252-254, 258-266",
        "ctx 240-251, 267-302",
        "ctx 192-239, 303-446",
    ),
    7: ("L1", "ctx 264-266", "den 267-278; ctx 252-263", "ctx 240-251, 267-302", "ctx 192-239, 303-446"),
    22: ("L2", "ctx 300-302", "ctx 288-299", "den 303-350; ctx 240-287", "ctx 192-239, 303-446"),
    84: ("L0", "den 444-446; ctx 441-443", "ctx 432-440, 444-446", "ctx 384-431", "ctx 192-383"),
}

# Worked example of method.md §5.5 (256 context -> 1024 frames, absolute frames, inclusive ranges):
# global step -> (target, L0, L1, L2, L3).
PAPER_ABSOLUTE = {
    0: ("L3", "ctx 253-255", "ctx 241-252", "ctx 193-240", "den 256-447; ctx 1-192"),
    1: ("L2", "ctx 253-255", "ctx 241-252", "den 256-303; ctx 193-240", "ctx 256-447"),
    2: ("L1", "ctx 253-255", "den 256-267; ctx 241-252", "ctx 256-303", "ctx 193-240, 304-447"),
    3: ("L0", "den 256-258; ctx 253-255", "ctx 256-267", "ctx 241-252, 268-303", "ctx 193-240, 304-447"),
    4: (
        "L0",
        "den 259-261; ctx 256-258",
        "ctx 253-255, 259-267",
        "ctx 241-252, 268-303",
        "ctx 193-240, 304-447",
    ),
    7: ("L1", "ctx 265-267", "den 268-279; ctx 253-264", "ctx 241-252, 268-303", "ctx 193-240, 304-447"),
    22: ("L2", "ctx 301-303", "ctx 289-300", "den 304-351; ctx 241-288", "ctx 193-240, 304-447"),
    84: ("L0", "den 445-447; ctx 442-444", "ctx 433-441, 445-447", "ctx 385-432", "ctx 193-384"),
    85: ("L3", "ctx 445-447", "ctx 433-444", "ctx 385-432", "den 448-639; ctx 193-384"),
    86: ("L2", "ctx 445-447", "ctx 433-444", "den 448-495; ctx 385-432", "ctx 448-639"),
    339: ("L0", "den 1021-1023; ctx 1018-1020", "ctx 1009-1017, 1021-1023", "ctx 961-1008", "ctx 769-960"),
}


@pytest.fixture(scope="module")
def paper_millivid() -> Strategy:
    return millivid((3, 12, 48, 192), 768, PAPER_TPL)


def test_paper_millivid_numbers(paper_millivid: Strategy) -> None:
    s = paper_millivid
    assert (s.chunk_frames, s.denoising_start, s.new_frames, s.num_steps) == (447, 255, 192, 85)
    assert set(s.step_tokens) == {3840} and not s.needs_padding
    assert s.reach == 255
    assert get_strategy("paper-256", "millivid").summary() == s.summary()
    assert [s.steps[i].group for i in range(8)] == [3, 2, 1, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("index", list(PAPER_RELATIVE))
def test_paper_relative_table(paper_millivid: Strategy, index: int) -> None:
    row = PAPER_RELATIVE[index]
    step = paper_millivid.steps[index]
    assert step.denoised_levels == (int(row[0][1]),)
    _check_row(step.selection, 0, row)


@pytest.mark.parametrize("index", list(PAPER_ABSOLUTE))
def test_paper_worked_example(paper_millivid: Strategy, index: int) -> None:
    plan = paper_millivid.rollout(256, 1024)
    assert (plan.num_chunks, plan.num_steps, plan.limit, plan.first_frame) == (4, 340, 1024, 1)
    assert plan.offsets == (1, 193, 385, 577)
    row = PAPER_ABSOLUTE[index]
    step = plan.step(index)
    assert step.group == int(row[0][1])
    _check_row(step.selection, step.offset, row)
    # The cell list agrees with the selection: denoised cells of the target level only.
    frames, levels = step.denoised
    assert set(levels.tolist()) == {step.group}
    assert runs(frames) == step.frame_ranges(step.group, DENOISED)


def test_paper_worked_example_l0_runs(paper_millivid: Strategy) -> None:
    plan = paper_millivid.rollout(256, 1024)
    # Steps 5, 6: L0 262-264, 265-267 with the previous 3 frames as L0 context; 8-11: 268-279 in 3s.
    for index, first in [(5, 262), (6, 265), (8, 268), (9, 271), (10, 274), (11, 277)]:
        step = plan.step(index)
        assert step.frame_ranges(0, DENOISED) == [(first, first + 3)]
        assert step.frame_ranges(0, CONTEXT) == [(first - 3, first)]


def test_paper_reference_configs() -> None:
    ablation = CASES["paper/millivid-ablation"]
    assert (ablation.chunk_frames, ablation.new_frames, ablation.num_steps) == (149, 64, 85)
    assert set(ablation.step_tokens) == {1280}
    assert ablation.rollout(256, 1024).num_steps == 1020
    fp = CASES["paper/framepack-ablation"]
    assert (fp.chunk_frames, fp.tokens_per_step, fp.rollout(256, 1024).num_steps) == (86, 1364, 768)
    fp3 = CASES["paper/framepack-3"]
    assert (fp3.chunk_frames, fp3.tokens_per_step) == (258, 4092)
    full = get_strategy("paper-256", "full-resolution")
    plan = full.rollout(256, 1024)
    assert (full.tokens_per_step, plan.num_steps, plan.limit, full.reach) == (3584, 110, 1026, 7)
    assert CASES["paper/full-resolution-4"].tokens_per_step == 1024
    assert get_strategy("paper-256", "framepack").rollout(256, 1024).num_steps == 256


def test_cpu_preset_numbers() -> None:
    s = get_strategy("loopcraft-64", "millivid")
    assert s.summary() == millivid((1, 4, 16, 64), 64, CPU_TPL).summary()
    assert (s.tokens_per_step, s.num_steps, s.new_frames, s.chunk_frames, s.reach) == (320, 85, 64, 149, 85)
    assert s.rollout(128, 512).num_steps == 6 * 85
    fp = get_strategy("loopcraft-64", "framepack")
    assert [int((fp.steps[0].selection[lv] == CONTEXT).sum()) for lv in range(4)] == [1, 4, 16, 43]
    assert (fp.tokens_per_step, fp.reach, fp.new_frames) == (320, 64, 1)
    full = get_strategy("loopcraft-64", "full-resolution")
    assert (full.chunk_frames, full.tokens_per_step, full.reach, full.new_frames) == (4, 256, 2, 2)


def test_paper_preset_numbers() -> None:
    fp = get_strategy("paper-256", "framepack")
    assert [int((fp.steps[0].selection[lv] == CONTEXT).sum()) for lv in range(4)] == [3, 12, 48, 129]
    assert (fp.new_frames, fp.reach, fp.tokens_per_step) == (3, 192, 3840)
    st = get_strategy("paper-256", "streaming")
    assert st.step_tokens == (3504, 3520, 3584, 3840) and st.reach == 362


# ---------------------------------------------------------------------------------------------------
# Construction errors, describe, packaging


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match="multiple"):
        millivid((1, 3, 16, 64), 64, CPU_TPL)
    with pytest.raises(ValueError, match="one positive window per level"):
        millivid((1, 4, 16), 64, CPU_TPL)
    with pytest.raises(ValueError, match="even"):
        full_resolution(5, CPU_TPL)
    with pytest.raises(ValueError, match="context frame count"):
        framepack(1, (1, 4, 16), CPU_TPL)
    with pytest.raises(ValueError, match="multiple of 320"):
        comparable_strategies(300, CPU_TPL)
    with pytest.raises(ValueError, match="UNSEEN=0"):
        Step(np.full((4, 3), 3), group=0)
    with pytest.raises(ValueError, match="denoise at least one"):
        Step(np.ones((4, 3)), group=0)
    step = Step(np.array([[1, 2]] * 4), group=0)
    with pytest.raises(ValueError, match="tokens_per_level"):
        Strategy("x", (step,), (64, 16))
    with pytest.raises(ValueError):  # read-only selections
        step.selection[0, 0] = 0
    with pytest.raises(ValueError, match="valid strategies: millivid"):
        get_strategy("loopcraft-64", "nope")
    with pytest.raises(ValueError, match="valid layouts"):
        get_strategy("nope", "millivid")


def test_describe_tables(paper_millivid: Strategy) -> None:
    text = describe(paper_millivid, steps=[0, 84])
    assert "85 steps per chunk, 3840 tokens per step, reach 255" in text
    assert "| 0 | L3 | ctx 252-254 | ctx 240-251 | ctx 192-239 | **den 255-446**, ctx 0-191 | 3840 |" in text
    text = describe_rollout(paper_millivid.rollout(256, 1024), steps=[339])
    assert "ctx 1009-1017, 1021-1023" in text and "buffer limit 1024" in text
    assert "236/240/256/320 (max 320)" in describe(get_strategy("loopcraft-64", "streaming"))
    assert "| 0 | all |" in describe(get_strategy("loopcraft-64", "framepack"))


def test_tokens_per_level_match_token_layout() -> None:
    tokens = pytest.importorskip("models.tokens")
    for name, strategies in STRATEGY_PRESETS.items():
        for strategy in strategies.values():
            assert strategy.tokens_per_level == tokens.LAYOUTS[name].tokens_per_level


def test_package_is_numpy_only() -> None:
    code = (
        "import sys, models.strategies; "
        "bad = [m for m in ('torch', 'millivid_env', 'agents', 'evaluation') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
