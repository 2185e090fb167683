"""State and dynamics of the beacon world, batched over ``num_envs`` with torch ops only.

The room is a ``size x size`` grid with outer walls. Cells hold a code (floor, wall, lava or a
beacon of some colour); agents are kept apart from the grid (they do not block each other).
Directions follow MiniGrid: 0 east (+x), 1 south (+y), 2 west, 3 north. Positions are ``(x, y)``.

Rules of one step, applied to every agent at once:
    * ``left``/``right`` turn by 90 degrees, ``stay`` does nothing;
    * ``forward`` into floor moves; into a wall does nothing; into lava moves and fails the team;
      into a beacon *touches* it without moving: the agent's own target (the colour its mission
      names) makes it *arrive* (it then stays still), any other beacon fails the team.
The episode terminates with success when every agent has arrived, with failure on lava or a
wrong beacon, and is truncated after ``max_steps`` steps. The team reward pays each arrival its
share ``(1 - 0.9 * steps / max_steps) / agents``, so a whole success is worth at most 1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from himo.envs.builtin.beacon_config import COLOURS, FORWARD, LEFT, RIGHT, BeaconConfig, MISSION_TEMPLATES

FLOOR, WALL, LAVA, AGENT = 0, 1, 2, 3
BEACON = 4  # code of the beacon of colour c is BEACON + c
NUMBER_OF_CODES = BEACON + len(COLOURS)

# Unit steps per direction (x, y).
DIRECTION_VECTORS = torch.tensor([[1, 0], [0, 1], [-1, 0], [0, -1]])

MAX_LAYOUT_ATTEMPTS = 100

STATE_TENSORS = (
    "grid", "beacon_position", "beacon_colour", "agent_position", "agent_direction", "target", "template", "arrived",
    "step_count", "seen",
)
"""The attributes that hold the worlds' episode state (everything else is fixed by the config)."""


class StepOutcome(NamedTuple):
    """What one step did, per env ``[E]`` or per env and agent ``[E, A]``."""

    reward: torch.Tensor  # [E] float, the team reward
    terminated: torch.Tensor  # [E] bool
    truncated: torch.Tensor  # [E] bool
    success: torch.Tensor  # [E] bool
    touched_target: torch.Tensor  # [E, A] bool
    touched_wrong: torch.Tensor  # [E, A] bool
    entered_lava: torch.Tensor  # [E, A] bool
    approach: torch.Tensor  # [E, A] float, decrease of the distance to the target beacon
    newly_seen: torch.Tensor  # [E, A] float, cells seen for the first time this episode


class BeaconWorld:
    """Batched beacon world: layouts, agents and the rules; rendering lives in ``beacon_render``."""

    def __init__(self, config: BeaconConfig, *, num_envs: int, seed: int, device: str | torch.device = "cpu") -> None:
        """Allocate the state of ``num_envs`` worlds and reset all of them with ``seed``."""
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"himo/beacon: num_envs must be a positive int, got {num_envs!r}")
        self.config = config
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        size, view = config.size, config.view
        self.directions = DIRECTION_VECTORS.to(self.device)
        base = torch.full((size, size), FLOOR, dtype=torch.uint8, device=self.device)
        base[0, :] = base[-1, :] = base[:, 0] = base[:, -1] = WALL
        self._base_grid = base
        interior = torch.arange(1, size - 1, device=self.device)
        ys, xs = torch.meshgrid(interior, interior, indexing="ij")
        self._interior_cells = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # [N, 2]
        # View cell (row, column) lies `view-1-row` cells ahead and `column - view//2` to the right.
        rows, columns = torch.meshgrid(torch.arange(view), torch.arange(view), indexing="ij")
        ahead, right = (view - 1 - rows).flatten(), (columns - view // 2).flatten()
        forward_vectors, right_vectors = DIRECTION_VECTORS, DIRECTION_VECTORS.roll(-1, dims=0)
        self._view_offsets = (
            ahead[None, :, None] * forward_vectors[:, None, :] + right[None, :, None] * right_vectors[:, None, :]
        ).to(self.device)  # [4, V*V, 2]
        self._self_view_index = (view - 1) * view + view // 2
        count, agents, beacons = num_envs, config.agents, config.beacons
        self.grid = base.expand(count, size, size).clone()
        self.beacon_position = torch.zeros(count, beacons, 2, dtype=torch.long, device=self.device)
        self.beacon_colour = torch.zeros(count, beacons, dtype=torch.long, device=self.device)
        self.agent_position = torch.zeros(count, agents, 2, dtype=torch.long, device=self.device)
        self.agent_direction = torch.zeros(count, agents, dtype=torch.long, device=self.device)
        self.target = torch.zeros(count, agents, dtype=torch.long, device=self.device)
        self.template = torch.zeros(count, agents, dtype=torch.long, device=self.device)
        self.arrived = torch.zeros(count, agents, dtype=torch.bool, device=self.device)
        self.step_count = torch.zeros(count, dtype=torch.long, device=self.device)
        # One extra slot per agent absorbs the view cells that lie outside the grid.
        self.seen = torch.zeros(count, agents, size * size + 1, dtype=torch.bool, device=self.device)
        self.reset(torch.ones(count, dtype=torch.bool, device=self.device))

    def seed(self, seed: int) -> None:
        """Re-seed the world's generator (the next reset draws from it)."""
        self.generator.manual_seed(seed)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Copies of the episode state of every world and of the generator's state."""
        state = {name: getattr(self, name).clone() for name in STATE_TENSORS}
        return state | {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from what :meth:`state_dict` returned; ``ValueError`` when it is another configuration's."""
        for name in STATE_TENSORS:
            own, saved = getattr(self, name), state[name]
            if saved.shape != own.shape or saved.dtype != own.dtype:
                raise ValueError(
                    f"himo/beacon: saved {name} is {saved.dtype} {list(saved.shape)}, these worlds have "
                    f"{own.dtype} {list(own.shape)} (was the env configuration changed?)"
                )
        for name in STATE_TENSORS:
            setattr(self, name, state[name].to(self.device, copy=True))
        self.generator.set_state(state["generator"])

    # ----------------------------------------------------------------------------------- queries
    # Every query takes an optional ``index`` (env indices) to compute only some envs; the
    # leading dimension of the result is then ``len(index)`` instead of ``E``.
    def target_colour(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Colour index ``[E, A]`` of each agent's target beacon."""
        return _pick(self.beacon_colour, index).gather(1, _pick(self.target, index))

    def target_distance(self) -> torch.Tensor:
        """Euclidean distance ``[E, A]`` in cells from each agent to its target beacon."""
        target_position = self.beacon_position.gather(1, self.target.unsqueeze(-1).expand(-1, -1, 2))
        return (target_position - self.agent_position).float().norm(dim=-1)

    def view_cells(self, index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat grid index ``[E, A, V*V]`` of every view cell (row-major) and whether it is inside the grid.

        Cells outside the grid get the index ``size * size``.
        """
        size = self.config.size
        offsets = self._view_offsets[_pick(self.agent_direction, index)]  # [E, A, V*V, 2]
        cells = _pick(self.agent_position, index).unsqueeze(2) + offsets
        inside = ((cells >= 0) & (cells < size)).all(-1)
        flat = cells[..., 1] * size + cells[..., 0]
        return torch.where(inside, flat, torch.full_like(flat, size * size)), inside

    def view_codes(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Cell code ``[E, A, V*V]`` of every view cell: outside is wall, other agents are drawn."""
        size = self.config.size
        grid, agent_position = _pick(self.grid, index), _pick(self.agent_position, index)
        count = grid.shape[0]
        flat, inside = self.view_cells(index)
        outside = torch.full((count, 1), WALL, dtype=torch.uint8, device=self.device)
        padded_grid = torch.cat([grid.view(count, size * size), outside], dim=1)
        codes = padded_grid.gather(1, flat.flatten(1)).view_as(flat)
        agent_flat = agent_position[..., 1] * size + agent_position[..., 0]
        occupancy = torch.zeros(count, size * size + 1, device=self.device)
        occupancy.scatter_add_(1, agent_flat, torch.ones_like(agent_flat, dtype=occupancy.dtype))
        others = occupancy.gather(1, flat.flatten(1)).view_as(flat)
        others[..., self._self_view_index] -= 1  # the agent does not see itself
        return torch.where(inside & (others > 0), torch.full_like(codes, AGENT), codes)

    # ------------------------------------------------------------------------------------ reset
    def reset(self, mask: torch.Tensor) -> None:
        """Start a new episode in the envs where ``mask`` ``[E]`` is True; the others are untouched."""
        indices = mask.nonzero().squeeze(-1)
        if indices.numel() == 0:
            return
        layout = self._sample_layouts(indices.numel())
        grid, beacon_position, beacon_colour, agent_position, agent_direction, target, template = layout
        self.grid[indices] = grid
        self.beacon_position[indices] = beacon_position
        self.beacon_colour[indices] = beacon_colour
        self.agent_position[indices] = agent_position
        self.agent_direction[indices] = agent_direction
        self.target[indices] = target
        self.template[indices] = template
        self.arrived[indices] = False
        self.step_count[indices] = 0
        flat, _ = self.view_cells(indices)
        seen = torch.zeros(indices.numel(), *self.seen.shape[1:], dtype=torch.bool, device=self.device)
        self.seen[indices] = seen.scatter_(2, flat, True)

    def _sample_layouts(self, count: int) -> tuple[torch.Tensor, ...]:
        """Draw ``count`` layouts in which every agent can reach a cell next to its target."""
        layouts = self._draw_layouts(count)
        for _ in range(MAX_LAYOUT_ATTEMPTS):
            bad = ~self._solvable(layouts[0], layouts[3], layouts[1], layouts[5])
            if not bad.any():
                return layouts
            redrawn = self._draw_layouts(int(bad.sum()))
            for tensor, replacement in zip(layouts, redrawn):
                tensor[bad] = replacement
        raise RuntimeError(f"himo/beacon: no solvable layout in {MAX_LAYOUT_ATTEMPTS} attempts for {self.config}")

    def _draw_layouts(self, count: int) -> tuple[torch.Tensor, ...]:
        """Draw ``count`` random layouts (not checked for solvability)."""
        config, generator, device = self.config, self.generator, self.device
        objects = config.beacons + config.hazards + config.agents
        order = torch.rand(count, self._interior_cells.shape[0], generator=generator, device=device).argsort(-1)
        chosen = self._interior_cells[order[:, :objects]]  # [count, objects, 2]
        beacon_position = chosen[:, : config.beacons]
        lava_position = chosen[:, config.beacons : config.beacons + config.hazards]
        agent_position = chosen[:, config.beacons + config.hazards :]
        beacon_colour = torch.rand(count, len(COLOURS), generator=generator, device=device).argsort(-1)
        beacon_colour = beacon_colour[:, : config.beacons]
        size = config.size
        grid = self._base_grid.expand(count, size, size).clone().view(count, size * size)
        grid.scatter_(1, lava_position[..., 1] * size + lava_position[..., 0], LAVA)
        beacon_codes = (BEACON + beacon_colour).to(torch.uint8)
        grid.scatter_(1, beacon_position[..., 1] * size + beacon_position[..., 0], beacon_codes)
        agent_direction = torch.randint(4, (count, config.agents), generator=generator, device=device)
        target = torch.randint(config.beacons, (count, config.agents), generator=generator, device=device)
        template = torch.randint(len(MISSION_TEMPLATES), (count, config.agents), generator=generator, device=device)
        grid = grid.view(count, size, size)
        return grid, beacon_position, beacon_colour, agent_position, agent_direction, target, template

    @staticmethod
    def _solvable(
        grid: torch.Tensor, agent_position: torch.Tensor, beacon_position: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """``[count]`` True where each agent's floor region touches its target beacon (flood fill)."""
        count, size, _ = grid.shape
        agents = agent_position.shape[1]
        passable = (grid == FLOOR).unsqueeze(1)
        reach = torch.zeros(count, agents, size, size, dtype=torch.bool, device=grid.device)
        env_index = torch.arange(count, device=grid.device)[:, None]
        agent_index = torch.arange(agents, device=grid.device)[None, :]
        reach[env_index, agent_index, agent_position[..., 1], agent_position[..., 0]] = True
        target_position = beacon_position.gather(1, target.unsqueeze(-1).expand(-1, -1, 2))
        target_cell = (env_index, agent_index, target_position[..., 1], target_position[..., 0])
        while True:
            grown = _grow(reach)
            touched = grown[target_cell]
            if touched.all():
                break
            grown &= passable
            if torch.equal(grown, reach):
                break
            reach = grown
        return touched.all(-1)

    # ------------------------------------------------------------------------------------- step
    def step(self, actions: torch.Tensor) -> StepOutcome:
        """Advance every env by one step with ``actions`` ``[E, A]`` (indices into ``ACTION_NAMES``)."""
        return self.advance((actions == RIGHT).long() - (actions == LEFT).long(), actions == FORWARD)

    def step_parts(self, turn: torch.Tensor, move: torch.Tensor) -> StepOutcome:
        """Advance with a composite action ``[E, A]`` per part (indices into ``ACTION_PARTS``): turn, then move."""
        return self.advance((turn == 2).long() - (turn == 1).long(), move == 1)

    def advance(self, turn: torch.Tensor, forward: torch.Tensor) -> StepOutcome:
        """Advance every env by one step: each agent turns by ``turn`` (-1 left, +1 right), then moves if ``forward``."""
        config, size = self.config, self.config.size
        active = ~self.arrived
        distance_before = self.target_distance()
        self.agent_direction = (self.agent_direction + turn * active) % 4
        forward = forward & active
        front = self.agent_position + self.directions[self.agent_direction]
        front_code = self.grid.view(self.num_envs, size * size).gather(1, front[..., 1] * size + front[..., 0]).long()
        touched = forward & (front_code >= BEACON)
        on_target = (front_code - BEACON) == self.target_colour()
        touched_target, touched_wrong = touched & on_target, touched & ~on_target
        moved = forward & ((front_code == FLOOR) | (front_code == LAVA))
        entered_lava = moved & (front_code == LAVA)
        self.agent_position = torch.where(moved.unsqueeze(-1), front, self.agent_position)
        self.arrived = self.arrived | touched_target
        self.step_count = self.step_count + 1

        success = self.arrived.all(-1)
        terminated = success | (entered_lava | touched_wrong).any(-1)
        truncated = (self.step_count >= config.max_steps) & ~terminated
        # Each arrival earns the team its share, sooner is worth more: a full success totals at most 1.
        arrivals = touched_target.float().sum(-1) / touched_target.shape[-1]
        reward = arrivals * (1.0 - 0.9 * self.step_count.float() / config.max_steps)

        flat, inside = self.view_cells()
        newly_seen = (~self.seen.gather(2, flat) & inside).sum(-1).float()
        self.seen.scatter_(2, flat, True)
        approach = torch.where(active, distance_before - self.target_distance(), torch.zeros_like(distance_before))
        return StepOutcome(
            reward, terminated, truncated, success, touched_target, touched_wrong, entered_lava, approach, newly_seen
        )


def _pick(tensor: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """``tensor`` restricted to the envs ``index`` (all envs when ``index`` is None)."""
    return tensor if index is None else tensor[index]


def _grow(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` ``[..., H, W]`` dilated by one cell in the four grid directions."""
    grown = mask.clone()
    grown[..., 1:, :] |= mask[..., :-1, :]
    grown[..., :-1, :] |= mask[..., 1:, :]
    grown[..., :, 1:] |= mask[..., :, :-1]
    grown[..., :, :-1] |= mask[..., :, 1:]
    return grown
