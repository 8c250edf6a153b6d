"""triune's verifiers as the reward function of the frameworks people already train with.

- `integrations.verl`    verl's `custom_reward_function` (`compute_score`, `compute_score_batch`);
- `integrations.easyr1`  EasyR1's `worker.reward.reward_function` (`compute_score`, batch type);
- `integrations.trl`     TRL's `GRPOTrainer(reward_funcs=[...])` (`make_reward_function`, `to_trl`).

None of them imports its framework: each is a plain function with the framework's call signature,
over `integrations.common`. `docs/interop.md` has the config lines for each.
"""
