"""Returns, GAE and the linear feature baseline against direct loop implementations."""

from __future__ import annotations

import pytest
import torch

from metarl.advantages import LinearFeatureBaseline, discounted_returns, gae, normalize_per_task


def _naive_returns(r, m, gamma, L):
    T, N = r.shape
    out = torch.zeros_like(r)
    for n in range(N):
        for start in range(0, T, L):
            g = 0.0
            for t in range(start + L - 1, start - 1, -1):
                if m[t, n]:
                    g = r[t, n] + gamma * g
                    out[t, n] = g
    return out


def _naive_gae(r, v, m, gamma, lam, L):
    """Compact each sequence to its real steps, then the textbook recursion."""
    T, N = r.shape
    out = torch.zeros_like(r)
    for n in range(N):
        for start in range(0, T, L):
            idx = [t for t in range(start, start + L) if m[t, n]]
            adv, next_v = 0.0, 0.0
            for t in reversed(idx):
                delta = r[t, n] + gamma * next_v - v[t, n]
                adv = delta + gamma * lam * adv
                out[t, n] = adv
                next_v = v[t, n]
    return out


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    T, N = 12, 5
    r = torch.randn(T, N, generator=g, dtype=torch.float64)
    v = torch.randn(T, N, generator=g, dtype=torch.float64)
    m = torch.ones(T, N, dtype=torch.float64)
    m[4:6, 1] = 0   # column 1: first episode (rows 0..5) terminated after row 3
    m[10:, 3] = 0   # column 3: second episode terminated after row 9
    return r * m, v, m


@pytest.mark.parametrize("L", [6, 12])
def test_discounted_returns_match_loop(data, L):
    r, _, m = data
    torch.testing.assert_close(discounted_returns(r, m, 0.9, L), _naive_returns(r, m, 0.9, L))


def test_whole_column_is_one_sequence_when_no_episode_length(data):
    r, v, m = data
    torch.testing.assert_close(discounted_returns(r, m, 0.9, None), _naive_returns(r, m, 0.9, 12))
    torch.testing.assert_close(gae(r, v, m, 0.9, 0.8, None), _naive_gae(r, v, m, 0.9, 0.8, 12))
    # ...and differs from per-episode returns (rewards flow across the boundary)
    assert not torch.allclose(discounted_returns(r, m, 0.9, None), discounted_returns(r, m, 0.9, 6))


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_matches_loop_and_lambda_one_is_returns_minus_values(data, lam):
    r, v, m = data
    torch.testing.assert_close(gae(r, v, m, 0.9, lam, 6), _naive_gae(r, v, m, 0.9, lam, 6))
    if lam == 1.0:
        torch.testing.assert_close(gae(r, v, m, 0.9, 1.0, 6),
                                   (discounted_returns(r, m, 0.9, 6) - v) * m)


def test_gae_bootstrap_value(data):
    r, v, m = data
    last = torch.full((r.shape[1],), 2.0, dtype=torch.float64)
    a = gae(r, v, m, 0.9, 1.0, None, last_values=last)
    b = gae(r, v, m, 0.9, 1.0, None)
    # the bootstrap only reaches the columns whose last row is real
    diff = (a - b)[-1]
    assert torch.allclose(diff[m[-1] > 0], torch.full_like(diff[m[-1] > 0], 0.9 * 2.0))
    assert torch.all(diff[m[-1] == 0] == 0)


def test_bad_shapes_are_rejected(data):
    r, v, m = data
    with pytest.raises(ValueError, match="must divide"):
        discounted_returns(r, m, 0.9, 5)
    with pytest.raises(ValueError, match="values"):
        gae(r, v[:-1], m, 0.9, 1.0)


def test_normalize_per_task():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 6, generator=g, dtype=torch.float64) * 5 + 3
    m = torch.ones(7, 6, dtype=torch.float64)
    m[5:, 0] = 0
    ti = torch.tensor([0, 0, 0, 1, 1, 1])
    y = normalize_per_task(x, m, ti, 2)
    for b in range(2):
        vals = y[:, ti == b][m[:, ti == b] > 0]
        assert abs(float(vals.mean())) < 1e-9
        assert abs(float(vals.std(unbiased=False)) - 1) < 1e-6
    assert torch.all(y[m == 0] == 0)


def test_linear_baseline_recovers_linear_targets_per_task():
    g = torch.Generator().manual_seed(2)
    T, B, E, D = 20, 3, 4, 2
    obs = torch.randn(T, B * E, D, generator=g)
    ti = torch.arange(B).repeat_interleave(E)
    feats = LinearFeatureBaseline.features(obs, episode_length=10).double()
    w_true = torch.randn(B, feats.shape[-1], generator=g, dtype=torch.float64)
    y = torch.einsum("tnf,nf->tn", feats, w_true[ti])
    m = torch.ones(T, B * E)
    m[15:, 0] = 0
    bl = LinearFeatureBaseline(reg_coeff=1e-10).fit(obs, y.float(), m, ti, 10, B)
    pred = bl.predict(obs, ti, 10)
    torch.testing.assert_close(pred, y.float(), rtol=1e-3, atol=1e-3)
    # the same result as one lstsq per task
    for b in range(B):
        cols = ti == b
        X = feats[:, cols][m[:, cols] > 0]
        target = y.float().double()[:, cols][m[:, cols] > 0]
        w = torch.linalg.lstsq(X, target.unsqueeze(-1)).solution.squeeze(-1)
        # the t², t³ weights are ill-conditioned; compare the fits, not only the weights
        torch.testing.assert_close(X @ bl.weights[b], X @ w, rtol=1e-5, atol=1e-5)


def test_linear_baseline_raises_ridge_when_singular():
    # all-zero observations: the obs and obs² columns are zero, the Gram matrix is singular
    T, N = 10, 4
    obs = torch.zeros(T, N, 2)
    y = torch.arange(T, dtype=torch.float32).unsqueeze(1).expand(T, N)
    bl = LinearFeatureBaseline(reg_coeff=0.0)
    bl.reg_coeff = 0.0
    pred = bl.fit_predict(obs, y, torch.ones(T, N), torch.zeros(N, dtype=torch.long), None, 1)
    assert torch.isfinite(bl.weights).all()
    torch.testing.assert_close(pred, y, rtol=1e-3, atol=1e-2)  # time features fit a ramp
    with pytest.raises(FloatingPointError, match="singular"):
        bad = y.clone()
        bad[0, 0] = float("nan")
        LinearFeatureBaseline().fit(obs, bad, torch.ones(T, N), torch.zeros(N, dtype=torch.long))


def test_normalize_per_task_with_episode_weights():
    x = torch.tensor([[1.0, 10.0], [3.0, 0.0]], dtype=torch.float64)
    m = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)   # column 1: 1 step
    ti = torch.tensor([0, 0])
    w = m / m.sum(0)                                                  # each episode alike
    y = normalize_per_task(x, m, ti, 1, weights=w)
    # weighted mean = (0.5·1 + 0.5·3 + 1·10) / 2 = 6; weighted var = (0.5·25 + 0.5·9 + 16) / 2
    std = ((0.5 * 25 + 0.5 * 9 + 16) / 2) ** 0.5
    torch.testing.assert_close(y, torch.tensor([[-5 / std, 4 / std], [-3 / std, 0.0]],
                                               dtype=torch.float64))
