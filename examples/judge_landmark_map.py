"""How right is the landmark-map reward in imagination? Its success calls against the true pose.

The counterpart of `examples/judge_reward_head.py` for ``landmark_locator=...``: imagined episodes of
the landmark env, steered towards a landmark by the ground-truth twin's true pose (with some random
actions), every step's map verdict compared with the truth (true distance within the task's radius).
Episodes run their full length (a map call does not end them here), so every step is judged.

    python examples/judge_landmark_map.py --locator loopcraft-64-locator --episodes 20
    python examples/judge_landmark_map.py --locator truth --episodes 20     # the true landmarks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import millivid_env  # noqa: F401  (registers the ids)
from millivid_env.loopcraft.task import landmark_distance, steer_to_landmark
from millivid_env.registration import LANDMARK_ENV_ID


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--locator", default="loopcraft-64-locator", help="locator checkpoint, or 'truth'")
    parser.add_argument("--env-id", default=LANDMARK_ENV_ID)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--epsilon", type=float, default=0.25, help="random actions among the steered ones")
    parser.add_argument("--seed", type=int, default=1_000_001, help="first reset seed")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    env = gym.make(args.env_id, reward_head=None, landmark_locator=args.locator, ground_truth=True).unwrapped
    rng = np.random.default_rng(args.seed)
    radius = env.reward_model.task.radius
    called, truth, errors, mapped, reached, first_call_right, first_call_wrong = [], [], [], [], 0, 0, 0
    for episode in tqdm(range(args.episodes), desc="episodes"):
        env.reset(seed=args.seed + episode)
        twin = env.ground_truth_env
        mapped.append(len(env.reward_model.maps[0]))
        first = None
        episode_truth = []
        for _ in range(args.max_steps):
            if rng.random() < args.epsilon:
                action = int(rng.integers(0, 3))
            else:
                action = steer_to_landmark(twin.world, twin.pose)
            env.step(action)
            true_distance = landmark_distance(twin.world, twin.pose)[0]
            success, _, distance = env.reward_model.evaluate([0])
            called.append(bool(success[0]))
            truth.append(true_distance <= radius)
            episode_truth.append(truth[-1])
            if np.isfinite(distance[0]):
                errors.append(float(distance[0] - true_distance))
            if first is None and success[0]:
                first = truth[-1]
        reached += any(episode_truth)
        first_call_right += first is True
        first_call_wrong += first is False
    called_np, truth_np = np.array(called), np.array(truth)
    tp = int((called_np & truth_np).sum())
    precision = tp / max(int(called_np.sum()), 1)
    recall = tp / max(int(truth_np.sum()), 1)
    result = {
        "locator": args.locator,
        "env_id": args.env_id,
        "episodes": args.episodes,
        "steps": len(called),
        "episodes_truly_reached": int(reached),
        "first_calls_right": int(first_call_right),
        "first_calls_wrong": int(first_call_wrong),
        "true_success_steps": int(truth_np.sum()),
        "called_steps": int(called_np.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "median_abs_distance_error": round(float(np.median(np.abs(errors))), 3) if errors else None,
        "steps_with_a_mapped_landmark": len(errors),
        "mean_mapped_landmarks": round(float(np.mean(mapped)), 2),
        "seed": args.seed,
        "max_steps": args.max_steps,
        "epsilon": args.epsilon,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    env.close()


if __name__ == "__main__":
    main()
