"""The manager's semi-MDP view of a batch against a plain reference and hand-computed cases."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from himo.hierarchy.semi_mdp import compact_to_decisions, decision_indices

B = torch.bool


def reference(batch, gamma, lmbda):
    """Per lane, the list of options as dicts, written with plain loops."""
    decision, reward, terminated, done, value, next_value = batch
    lanes = []
    for lane in range(len(decision)):
        steps = len(decision[lane])
        options = []
        for t in range(steps):
            if not decision[lane][t]:
                continue
            j = t
            while not (done[lane][j] or j == steps - 1 or decision[lane][j + 1]):
                j += 1
            k = j - t + 1
            options.append(
                dict(
                    step=t,
                    length=k,
                    reward=sum(gamma**i * reward[lane][t + i] for i in range(k)),
                    discount=gamma**k,
                    terminated=terminated[lane][j],
                    end=done[lane][j] or j == steps - 1,
                    value=value[lane][t],
                    bootstrap=next_value[lane][j],
                )
            )
        following = 0.0
        for o in reversed(options):
            delta = o["reward"] + o["discount"] * (not o["terminated"]) * o["bootstrap"] - o["value"]
            o["advantage"] = delta + o["discount"] * lmbda * (not o["end"]) * following
            o["returns"] = o["advantage"] + o["value"]
            following = o["advantage"]
        lanes.append(options)
    return lanes


def run(batch, gamma, lmbda):
    decision, reward, terminated, done, value, next_value = batch
    return compact_to_decisions(
        torch.tensor(decision, dtype=B),
        torch.tensor(reward, dtype=torch.float64),
        torch.tensor(terminated, dtype=B),
        torch.tensor(done, dtype=B),
        torch.tensor(value, dtype=torch.float64),
        torch.tensor(next_value, dtype=torch.float64),
        gamma,
        lmbda,
    )


@st.composite
def batches(draw):
    lanes, steps = draw(st.integers(1, 4)), draw(st.integers(1, 20))
    bools = lambda p: [[draw(st.floats(0, 1)) < p for _ in range(steps)] for _ in range(lanes)]  # noqa: E731
    floats = lambda: [[draw(st.floats(-1, 1)) for _ in range(steps)] for _ in range(lanes)]  # noqa: E731
    decision, done, term = bools(draw(st.floats(0, 1))), bools(draw(st.floats(0, 0.5))), bools(0.5)
    terminated = [[d and x for d, x in zip(dl, tl)] for dl, tl in zip(done, term)]
    for lane in range(lanes):
        for t in range(steps - 1):
            decision[lane][t + 1] |= done[lane][t]  # the policy always decides at an episode start
    return decision, floats(), terminated, done, floats(), floats()


unit = st.floats(0, 1, exclude_min=True)


@settings(max_examples=150, deadline=None)
@given(batch=batches(), gamma=unit, lmbda=unit)
def test_matches_plain_reference(batch, gamma, lmbda):
    out = run(batch, gamma, lmbda)
    expected = reference(batch, gamma, lmbda)
    assert out.batch_size == (len(expected), max(len(o) for o in expected))
    for lane, options in enumerate(expected):
        assert out.valid[lane].tolist() == [True] * len(options) + [False] * (out.shape[1] - len(options))
        for slot, option in enumerate(options):
            for name, want in option.items():
                got = getattr(out, name)[lane, slot].item()
                assert got == pytest.approx(want, rel=1e-6, abs=1e-4), (name, lane, slot)
        # Padding is harmless: zero advantage and returns.
        assert not out.advantage[lane, len(options) :].any()
        assert not out.returns[lane, len(options) :].any()
    lane, step = decision_indices(out)
    steps = [(i, o["step"]) for i, options in enumerate(expected) for o in options]
    assert list(zip(lane.tolist(), step.tolist())) == steps


def one_lane(decision, reward, done, terminated, value, next_value, gamma, lmbda):
    rows = (decision, reward, terminated, done, value, next_value)
    return run(tuple([row] for row in rows), gamma, lmbda)


@pytest.mark.parametrize("terminal", [False, True])
def test_option_spanning_truncation_or_termination(terminal):
    # One option over steps 0..2 ends with the episode at 2; a new one starts at 3 and is cut by the batch.
    out = one_lane(
        decision=[True, False, False, True],
        reward=[1.0, 1.0, 1.0, 1.0],
        done=[False, False, True, False],
        terminated=[False, False, terminal, False],
        value=[2.0, 9.0, 9.0, 4.0],
        next_value=[9.0, 9.0, 8.0, 6.0],
        gamma=0.5,
        lmbda=0.9,
    )
    assert out.step.tolist() == [[0, 3]] and out.length.tolist() == [[3, 1]]
    assert out.reward.tolist() == [[1.75, 1.0]] and out.discount.tolist() == [[0.125, 0.5]]
    assert out.end.tolist() == [[True, True]] and out.terminated.tolist() == [[terminal, False]]
    first = 1.75 - 2.0 if terminal else 1.75 + 0.125 * 8.0 - 2.0  # truncation bootstraps from the final obs
    assert out.advantage.tolist() == [[first, 1.0 + 0.5 * 6.0 - 4.0]]
    assert out.returns.tolist() == [[first + 2.0, 4.0]]


def test_option_cut_by_batch_end_and_gamma_k_in_the_lambda_chain():
    # Step 0 belongs to an earlier option; options at 1..2 and 3..4, the second cut by the batch end.
    out = one_lane(
        decision=[False, True, False, True, False],
        reward=[5.0, 1.0, 1.0, 1.0, 1.0],
        done=[False] * 5,
        terminated=[False] * 5,
        value=[9.0, 1.0, 9.0, 2.0, 9.0],
        next_value=[9.0, 9.0, 2.0, 9.0, 4.0],
        gamma=0.5,
        lmbda=0.5,
    )
    assert out.step.tolist() == [[1, 3]] and out.length.tolist() == [[2, 2]]
    assert out.reward.tolist() == [[1.5, 1.5]] and out.discount.tolist() == [[0.25, 0.25]]
    assert out.bootstrap.tolist() == [[2.0, 4.0]] and out.end.tolist() == [[False, True]]
    last = 1.5 + 0.25 * 4.0 - 2.0  # 0.5
    first = (1.5 + 0.25 * 2.0 - 1.0) + 0.25 * 0.5 * last  # 1 + 0.0625
    assert out.advantage.tolist() == [[first, last]] and out.returns.tolist() == [[first + 1.0, last + 2.0]]


def two_lanes(decision, gamma, lmbda):
    false, zeros = [[False] * 3] * 2, [[0.0] * 3] * 2
    return run((decision, [[1.0] * 3] * 2, false, false, zeros, zeros), gamma, lmbda)


def test_lane_without_decision_and_batch_without_any():
    out = two_lanes([[True, False, False], [False] * 3], 1.0, 1.0)
    assert out.valid.tolist() == [[True], [False]] and out.reward.tolist() == [[3.0], [0.0]]
    assert out.advantage.tolist() == [[3.0], [0.0]] and out.returns.tolist() == [[3.0], [0.0]]
    empty = two_lanes([[False] * 3] * 2, 0.9, 0.9)
    assert empty.batch_size == (2, 0)
    assert all(index.numel() == 0 for index in decision_indices(empty))


def test_every_step_a_decision_is_one_step_gae():
    gen = torch.Generator().manual_seed(0)
    lanes, steps, gamma, lmbda = 3, 12, 0.95, 0.8
    done = torch.rand(lanes, steps, generator=gen) < 0.2
    terminated = done & (torch.rand(lanes, steps, generator=gen) < 0.5)
    reward, value, next_value = torch.randn(3, lanes, steps, generator=gen)
    decision = torch.ones(lanes, steps, dtype=B)
    out = compact_to_decisions(decision, reward, terminated, done, value, next_value, gamma, lmbda)
    columns = (x[..., None] for x in (value, next_value, reward, done, terminated))
    advantage, returns = vec_generalized_advantage_estimate(gamma, lmbda, *columns)
    assert out.valid.all() and (out.length == 1).all()
    torch.testing.assert_close(out.advantage, advantage.squeeze(-1))
    torch.testing.assert_close(out.returns, returns.squeeze(-1))


def test_decision_indices_gather_observations():
    decision = torch.tensor([[False, True, False, True], [True, False, False, False]])
    zeros = torch.zeros(2, 4)
    out = compact_to_decisions(decision, zeros, decision & False, decision & False, zeros, zeros, 0.9, 0.9)
    obs = torch.arange(2 * 4 * 3).view(2, 4, 3)
    lane, step = decision_indices(out)
    assert torch.equal(obs[lane, step], obs[decision])
    assert out[out.valid].batch_size == (3,)


def test_rejects_mismatched_inputs():
    ones = torch.ones(2, 3)
    flags = torch.zeros(2, 3, dtype=B)
    with pytest.raises(ValueError, match="next_value has shape"):
        compact_to_decisions(flags, ones, flags, flags, ones, torch.ones(2, 4), 0.9, 0.9)
    with pytest.raises(ValueError, match="done must be a bool"):
        compact_to_decisions(flags, ones, flags, ones, ones, ones, 0.9, 0.9)
