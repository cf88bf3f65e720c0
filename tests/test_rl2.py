"""RL²: trial construction, recurrent-state resets, exact PPO replay, a mechanism test
with a known answer, checkpoints and the run/CLI integration."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import metarl
from metarl.agents.rl2 import (
    RL2,
    RL2Config,
    RL2Policy,
    make_actor,
    prediction_targets,
    time_left,
    trial_inputs,
)
from metarl.config import config_differences, make_config
from metarl.errors import ConfigError
from metarl.rollout import Sampler


@pytest.fixture(autouse=True)
def _one_thread():
    # shared CPU: keep every test on one core
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _config(family, **kw) -> RL2Config:
    base = dict(family=family.id, fresh_tasks=True, num_train_tasks=0, episodes_per_trial=2,
                trials_per_iter=16, num_iterations=10, hidden_size=16, num_minibatches=2,
                update_epochs=2)
    base.update(kw)
    return make_config(RL2Config, base)


def _policy(family, hidden: int = 16, seed: int = 0, **kw) -> RL2Policy:
    torch.manual_seed(seed)
    env = family.make_env()
    return RL2Policy(env.observation_space, env.action_space, hidden, **kw)


# ---- trial construction -----------------------------------------------------------------
def test_inputs_carry_previous_action_reward_and_done_flag() -> None:
    fam = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=4)
    policy = _policy(fam)
    batch = Sampler(fam).sample(fam.sample_tasks(5, 0), make_actor(policy),
                                episodes_per_trial=2, seed=3)
    inp = trial_inputs(batch)
    x = policy.features(batch.obs, inp["prev_action"], inp["prev_reward"], inp["done_flag"],
                        inp["has_prev"])
    assert x.shape == (8, 5, 1 + 3 + 2)
    assert torch.all(x[0, :, 1:] == 0)  # trial start: no previous action / reward, no done
    # row t carries the action and reward of row t-1, across the episode boundary too
    onehot = torch.nn.functional.one_hot(batch.actions[:-1], 3).float()
    assert torch.equal(x[1:, :, 1:4], onehot)
    assert torch.equal(x[1:, :, 4], batch.rewards[:-1])
    done = x[:, 0, 5]
    assert done.tolist() == [0, 0, 0, 0, 1, 0, 0, 0]  # first step of episode 2 only


def test_recurrent_state_resets_between_trials_only() -> None:
    """Feed two trials through one actor: the second trial's outputs equal those of the
    second trial fed alone (state reset at the trial boundary); but inside a trial the
    memory carries over (episode 2 differs from a fresh start)."""
    fam = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=5)
    policy = _policy(fam)
    sampler = Sampler(fam)
    tasks_a, tasks_b = fam.sample_tasks(4, 1), fam.sample_tasks(4, 2)

    rec_both: list[torch.Tensor] = []
    actor = make_actor(policy, record=rec_both)
    sampler.sample(tasks_a, actor, episodes_per_trial=2, seed=10)
    n_first = len(rec_both)
    second = sampler.sample(tasks_b, actor, episodes_per_trial=2, seed=11)

    rec_alone: list[torch.Tensor] = []
    alone = sampler.sample(tasks_b, make_actor(policy, record=rec_alone),
                           episodes_per_trial=2, seed=11)
    assert torch.equal(second.actions, alone.actions)
    assert torch.equal(second.log_probs, alone.log_probs)
    assert torch.equal(torch.stack(rec_both[n_first:]), torch.stack(rec_alone))
    # The training replay also starts each trial (column) from zero: same log-probs.
    agent = RL2(_config(fam, family_kwargs={"arms": 3, "pulls": 5}), fam)
    agent.policy.load_state_dict(policy.state_dict())
    out = agent.replay(agent.policy, second, trial_inputs(second))
    torch.testing.assert_close(out.log_probs, second.log_probs, atol=1e-5, rtol=0)

    # Memory is kept across the episodes of a trial: episode 2's hidden states are not
    # those of episode 1 replayed from a zero state.
    h = torch.stack(rec_alone)  # (T, N, H)
    assert not torch.allclose(h[5], h[0])


def test_actor_swaps_in_a_given_memory() -> None:
    """``memory=(t, states)``: the GRU state before row t is replaced. Swapping in the
    state the trial had there anyway changes nothing, bit for bit; another task's memory
    leaves the rows before t alone and the later states follow the GRU's recurrence from
    the swapped-in memory on the trial's own inputs."""
    fam = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=5)
    policy = _policy(fam)
    sampler, tasks = Sampler(fam), fam.sample_tasks(4, 1)
    rec: list[torch.Tensor] = []
    natural = sampler.sample(tasks, make_actor(policy, record=rec), episodes_per_trial=2, seed=5)
    own = rec[4]  # after the last step of episode 1 (5 pulls)
    same = sampler.sample(tasks, make_actor(policy, memory=(5, own)), episodes_per_trial=2,
                          seed=5)
    assert torch.equal(same.actions, natural.actions)
    assert torch.equal(same.log_probs, natural.log_probs)

    other = torch.roll(own, 1, dims=0)  # task i's memory on task i + 1
    rec_swapped: list[torch.Tensor] = []
    swapped = sampler.sample(tasks, make_actor(policy, record=rec_swapped, memory=(5, other)),
                             episodes_per_trial=2, seed=5)
    assert torch.equal(torch.stack(rec_swapped[:5]), torch.stack(rec[:5]))
    assert not torch.equal(swapped.log_probs[5:], natural.log_probs[5:])
    inp = trial_inputs(swapped)
    x = policy.features(swapped.obs, inp["prev_action"], inp["prev_reward"],
                        inp["done_flag"], inp["has_prev"])
    h, expected = other, []
    with torch.no_grad():
        for t in range(5, x.shape[0]):
            h = policy.step(x[t], h)
            expected.append(h)
    torch.testing.assert_close(torch.stack(rec_swapped[5:]), torch.stack(expected),
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="one state a column"):
        sampler.sample(fam.sample_tasks(3, 1), make_actor(policy, memory=(5, own)),
                       episodes_per_trial=2, seed=5)


@pytest.mark.parametrize("family_id,kwargs", [
    ("metarl/Bandit-v0", {"arms": 4, "pulls": 6}),
    ("metarl/TabularMDP-v0", {}),
    # big success radius and short horizon: many early terminations, so padding rows
    ("metarl/PointNav2D-v0", {"success_radius": 0.3, "horizon": 8}),
])
@pytest.mark.parametrize("time_input,pair_input",
                         [(False, False), (True, False), (False, True), (True, True)])
def test_first_epoch_ratio_is_exactly_one(family_id: str, kwargs: dict, time_input: bool,
                                          pair_input: bool) -> None:
    """The sequence-minibatch replay recomputes the sampling log-probs exactly (with
    ``pair_input`` and ``time_input`` too: the replay's previous observation and time left
    are the sampler's, padding rows included)."""
    fam = metarl.make_family(family_id, **kwargs)
    agent = RL2(_config(fam, family_kwargs=kwargs, episodes_per_trial=3, num_minibatches=4,
                        time_input=time_input, pair_input=pair_input), fam)
    batch = agent.sample(agent._tasks_for(0), seed=5)
    if family_id.startswith("metarl/PointNav"):
        assert (batch.mask == 0).any(), "the test needs padding rows"
    out = agent.replay(agent.policy, batch, trial_inputs(
        batch, prev_obs=agent.policy.needs_prev_obs, time_frac=time_input))
    m = batch.mask > 0
    torch.testing.assert_close(out.log_probs[m], batch.log_probs[m], atol=1e-5, rtol=0)
    metrics = agent.train_iteration(0)
    assert metrics["ratio0"] < 1e-5


def test_time_left_counts_down_each_episode_and_the_trial() -> None:
    """Known values for a trial of 2 episodes of 4 steps: the episode fraction restarts at
    1 with each episode; the trial fraction falls by 1/8 a step."""
    frac = time_left(torch.arange(8), horizon=4, trial_steps=8)
    torch.testing.assert_close(frac[:, 0], torch.tensor([1, .75, .5, .25, 1, .75, .5, .25]))
    torch.testing.assert_close(frac[:, 1], 1 - torch.arange(8) / 8)


def test_a_time_reading_policy_needs_the_trial_shape() -> None:
    fam = metarl.make_family("metarl/Bandit-v0", arms=2, pulls=5)
    policy = _policy(fam, time_input=True)
    with pytest.raises(ValueError, match="horizon and episodes_per_trial"):
        make_actor(policy)
    agent = RL2(_config(fam, family_kwargs={"arms": 2, "pulls": 5}, time_input=True), fam)
    # Trials longer than training's (the evaluator's curve runs them): the actor's time
    # left follows the trial it runs, as the replay of that trial computes it.
    batch = agent.sample(fam.sample_tasks(3, 0), seed=0, episodes_per_trial=4)
    out = agent.replay(agent.policy, batch, trial_inputs(batch, time_frac=True))
    torch.testing.assert_close(out.log_probs, batch.log_probs, atol=1e-5, rtol=0)
    curve = agent.evaluate_adaptation(fam.sample_tasks(3, 0), budget=4, episodes=1, seed=0)
    assert curve.returns.shape == (4, 3)


def test_pair_input_places_the_reward_in_the_state_action_slot() -> None:
    """Known values: after action 3 in state 2 paid 0.5, the pair code marks action 3's
    own slot and slot (2, 3), and its reward copy holds 0.5 in both; at a trial's first
    step both are zero."""
    fam = metarl.make_family("metarl/TabularMDP-v0")
    policy = _policy(fam, pair_input=True)
    n_s, n_a = 10, 5
    obs, prev_obs = torch.zeros(2, n_s), torch.zeros(2, n_s)
    obs[:, 7] = 1.0
    prev_obs[:, 2] = 1.0
    x = policy.features(obs, torch.tensor([3, 3]), torch.tensor([0.5, 0.5]),
                        torch.tensor([False, False]), torch.tensor([True, False]), prev_obs)
    assert x.shape == (2, policy.input_dim) == (2, n_s + n_a + 2 + 2 * (1 + n_s) * n_a)
    pair, pair_reward = x[:, -2 * (1 + n_s) * n_a:].reshape(2, 2, 1 + n_s, n_a).unbind(1)
    expected = torch.zeros(1 + n_s, n_a)
    expected[0, 3] = 1.0  # the action's own slot
    expected[1 + 2, 3] = 1.0  # the (state, action) slot
    torch.testing.assert_close(pair[0], expected)
    torch.testing.assert_close(pair_reward[0], 0.5 * expected)
    assert not pair[1].any() and not pair_reward[1].any()  # no previous step yet
    with pytest.raises(ValueError, match="prev_obs"):
        policy.features(obs, torch.tensor([3, 3]), torch.tensor([0.5, 0.5]),
                        torch.tensor([False, False]), torch.tensor([True, False]))


def test_padding_rows_do_not_change_the_memory() -> None:
    """After an early termination the GRU state is frozen until the next episode starts."""
    fam = metarl.make_family("metarl/PointNav2D-v0", success_radius=0.3, horizon=8)
    policy = _policy(fam)
    rec: list[torch.Tensor] = []
    batch = Sampler(fam).sample(fam.sample_tasks(16, 0), make_actor(policy, record=rec),
                                episodes_per_trial=2, seed=1)
    h = torch.stack(rec)
    pad = batch.mask[1:] == 0
    assert pad.any()
    assert torch.equal(h[1:][pad], h[:-1][pad])


def test_both_heads_read_the_one_gru_and_padding_is_invisible() -> None:
    """The values and the log-probs both depend on the GRU, padding rows included, and the
    replay reproduces the sampler's log-probs there."""
    kwargs = {"success_radius": 0.3, "horizon": 8}
    fam = metarl.make_family("metarl/PointNav2D-v0", **kwargs)
    agent = RL2(_config(fam, family_kwargs=kwargs), fam)
    policy = agent.policy
    batch = agent.sample(agent._tasks_for(0), seed=5)
    m = batch.mask > 0
    assert not m.all(), "the test needs padding rows"
    out = agent.replay(policy, batch, trial_inputs(batch))
    torch.testing.assert_close(out.log_probs[m], batch.log_probs[m], atol=1e-5, rtol=0)

    def touched(y: torch.Tensor) -> bool:
        grads = torch.autograd.grad(y[m].sum(), list(policy.gru.parameters()), retain_graph=True,
                                    allow_unused=True)
        return any(g is not None and bool(g.abs().sum() > 0) for g in grads)

    assert touched(out.values) and touched(out.log_probs)
    assert agent.train_iteration(0)["ratio0"] < 1e-5


def test_configs_of_old_runs_with_retired_keys_still_load() -> None:
    """``separate_value``, ``head_hidden`` and ``prev_obs_input`` are gone: old run folders
    recording their defaults load as today's config; any other value is a clear error."""
    old = {"hidden_size": 8, "separate_value": False, "head_hidden": 0, "prev_obs_input": False}
    assert make_config(RL2Config, old) == make_config(RL2Config, {"hidden_size": 8})
    assert config_differences(old, make_config(RL2Config, {"hidden_size": 8})) == []
    with pytest.raises(ConfigError, match="head_hidden.*removed.*older metarl"):
        make_config(RL2Config, {**old, "head_hidden": 8})


# ---- the prediction loss (aux_coef) -------------------------------------------------------
def test_prediction_targets_are_the_next_step_of_the_same_episode() -> None:
    """o_{t+1} is the target at row t only where row t+1 is real and in the same episode:
    not at an episode's last row (the next row starts the next episode) nor before padding."""
    kwargs = {"success_radius": 0.3, "horizon": 8}
    fam = metarl.make_family("metarl/PointNav2D-v0", **kwargs)
    agent = RL2(_config(fam, family_kwargs=kwargs, episodes_per_trial=3), fam)
    batch = agent.sample(agent._tasks_for(0), seed=5)
    assert (batch.mask == 0).any(), "the test needs padding rows"
    next_obs, next_ok = prediction_targets(batch, trial_inputs(batch)["done_flag"])
    T, n = batch.mask.shape
    for t in range(T):
        for j in range(n):
            expected = (t + 1 < T and (t + 1) % 8 != 0 and bool(batch.mask[t + 1, j] > 0))
            assert bool(next_ok[t, j]) == expected, (t, j)
            if expected:
                assert torch.equal(next_obs[t, j], batch.obs[t + 1, j].float())
    assert next_ok.sum() > 0


def test_prediction_loss_learns_what_the_trial_showed() -> None:
    """A known answer: in 2-armed Bernoulli bandits with p ~ U(0, 1), a predictor without
    memory can do no better than each arm's overall mean (error = the reward variance); the
    Bayes predictor of a 20-pull trial about 0.8 of it. Trained on the prediction loss alone,
    the GRU + head must beat 0.95 of it on held-out trials, which it can only do by keeping
    what earlier pulls of the arm paid."""
    kw = {"arms": 2, "pulls": 20}
    fam = metarl.make_family("metarl/Bandit-v0", **kw)
    agent = RL2(_config(fam, family_kwargs=kw, episodes_per_trial=1, hidden_size=32,
                        aux_coef=1.0), fam)
    policy = agent.policy
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)

    def loss(batch) -> torch.Tensor:
        inputs = trial_inputs(batch)
        out = agent.replay(policy, batch, inputs)
        next_obs, next_ok = prediction_targets(batch, inputs["done_flag"])
        return policy.prediction_losses(out.hidden, batch.actions, batch.rewards, batch.mask,
                                        next_obs, next_ok)[0]

    held_out = agent.sample(fam.sample_tasks(500, 99), seed=99)
    for i in range(150):
        step_loss = loss(agent.sample(fam.sample_tasks(64, i), seed=i))
        opt.zero_grad()
        step_loss.backward()
        opt.step()
    with torch.no_grad():
        ratio = (loss(held_out) / held_out.rewards.var()).item()
    assert ratio < 0.95, ratio


@pytest.mark.parametrize("family_id", ["metarl/TabularMDP-v0", "metarl/PointNav2D-v0"])
def test_prediction_head_exists_only_with_aux_coef(family_id: str) -> None:
    fam = metarl.make_family(family_id)
    assert RL2(_config(fam), fam).policy.predictor is None
    agent = RL2(_config(fam, aux_coef=0.5), fam)
    assert agent.policy.predictor is not None
    metrics = agent.train_iteration(0)
    assert metrics["ratio0"] < 1e-5  # the head does not touch the sampled log-probs
    assert metrics["aux_reward_loss"] > 0 and metrics["aux_obs_loss"] > 0


# ---- learning: a mechanism with a known answer -------------------------------------------
def test_two_armed_bandit_learns_to_exploit_the_paying_arm() -> None:
    """One of two arms always pays (p = [1, 0] or [0, 1], at random per trial). After short
    training, the second half of the pulls go to the paying arm."""
    fam = metarl.make_family("metarl/Bandit-v0", arms=2, pulls=10)
    tasks = [fam.task(probs=[1.0, 0.0]), fam.task(probs=[0.0, 1.0])]
    cfg = _config(fam, family_kwargs={"arms": 2, "pulls": 10}, fresh_tasks=False,
                  episodes_per_trial=1, trials_per_iter=64, num_iterations=50, hidden_size=32,
                  lr=3e-3, anneal_lr=False, gamma=0.9, gae_lambda=0.9, ent_coef=0.0, num_minibatches=2,
                  update_epochs=4, seed=1)
    agent = RL2(cfg, fam, train_tasks=tasks)
    for it in range(cfg.num_iterations):
        agent.train_iteration(it)
    batch = agent.sample(tasks * 100, seed=99)
    paying = torch.tensor([0, 1] * 100)
    second_half = batch.actions[5:]
    frac = (second_half == paying).float().mean().item()
    assert frac > 0.95, frac


# ---- config, checkpoints, runs -----------------------------------------------------------
def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        make_config(RL2Config, {"gamma": 1.5})
    with pytest.raises(ConfigError):
        make_config(RL2Config, {"trials_per_iter": 4, "num_minibatches": 8})
    with pytest.raises(ConfigError, match="unknown config key"):
        make_config(RL2Config, {"hiden_size": 3})
    with pytest.raises(ConfigError, match="aux_coef"):
        make_config(RL2Config, {"aux_coef": -0.1})
    fam = metarl.make_family("metarl/Bandit-v0")
    with pytest.raises(ConfigError, match="train tasks"):
        RL2(make_config(RL2Config, {"family": fam.id, "fresh_tasks": False}), fam, [])


@pytest.mark.parametrize("pair_input,aux_coef", [(False, 0.0), (True, 1.0)])
def test_resume_gives_the_same_parameters(tmp_path, pair_input: bool, aux_coef: float) -> None:
    from metarl.runs import create_run, load_checkpoint, open_run, train_run

    fam = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=5)
    cfg = _config(fam, family_kwargs={"arms": 3, "pulls": 5}, num_iterations=4,
                  pair_input=pair_input, aux_coef=aux_coef)
    overrides = {k: v for k, v in vars(cfg).items()}
    straight = train_run(create_run("rl2", overrides=overrides, out=tmp_path / "a"), progress=False)
    part = create_run("rl2", overrides=overrides, out=tmp_path / "b")
    train_run(part, progress=False, stop_after=2)
    assert load_checkpoint(part.path / "checkpoint.pt")["iteration"] == 1
    resumed = train_run(open_run(part.path), resume=True, progress=False)
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_evaluation_curve_is_per_episode_of_the_trial() -> None:
    fam = metarl.make_family("metarl/Bandit-v0", arms=3, pulls=5)
    agent = RL2(_config(fam, family_kwargs={"arms": 3, "pulls": 5}), fam)
    tasks = fam.sample_tasks(6, 0)
    res = agent.evaluate_adaptation(tasks, budget=3, episodes=2, seed=0)
    assert res.budgets == [1, 2, 3] and res.episodes == [0.0, 1.0, 2.0]
    assert res.returns.shape == (3, 6) and res.budget_unit == "episodes"
    assert np.all((res.returns >= 0) & (res.returns <= 5))


def test_train_and_evaluate_through_the_run_machinery(tmp_path) -> None:
    from metarl.evaluation import evaluate_run
    from metarl.runs import create_run, train_run

    run = create_run("rl2", "rl2_bandit_k5_n10",
                     {"num_iterations": 2, "trials_per_iter": 8, "num_minibatches": 2,
                      "hidden_size": 8, "num_test_tasks": 5, "checkpoint_every": 1},
                     out=tmp_path / "run")
    train_run(run, progress=False)
    result = evaluate_run(run.path, plot=False, random_baseline=False)
    curve = result["curves"][0]
    assert curve.budget_unit == "episodes" and curve.n_tasks == 5
    assert (run.path / "eval" / "curve.json").is_file()


def test_every_rl2_preset_resolves_and_names_its_paper() -> None:
    from metarl.config import list_presets, load_preset, resolve_config

    names = list_presets("rl2")
    assert {"rl2_bandit_k5_n10", "rl2_bandit_k10_n100", "rl2_bandit_k50_n500", "rl2_tabular_n10",
            "rl2_tabular_n25", "rl2_pointnav", "rl2_halfcheetah_vel"} <= set(names)
    for name in names:
        preset = load_preset(name)
        assert "et al." in preset.source, name
        cfg, _ = resolve_config("rl2", RL2Config, name)
        if "/MetaWorld-" in cfg.family and importlib.util.find_spec("metaworld") is None:
            continue  # the [metaworld] venv checks these
        fam = metarl.make_family(cfg.family, **cfg.family_kwargs)
        assert cfg.fresh_tasks or cfg.num_train_tasks > 0, name
        assert fam.id == cfg.family
