"""Which of a build's agents play together: (behaviour, agent id) -> (court, seat).

ML-Agents knows behaviours, agents and (since 2.0) multi-agent groups, not courts. A court here
is the set of agents that play one episode together and share its score; a seat is an agent's
place in its court (the index the learner sees). The rules, in order:

- ``agents_per_court`` given: each team's agents in id order, ``agents_per_court / teams`` of
  each team per court; seats team by team.
- every agent reports a multi-agent group (``group_id`` > 0): each group is a court, in group
  id order; seats in (team, id) order.
- several teams: one agent of each team per court (ML-Agents 1.x Tennis: court k pairs the k-th
  agent of "Tennis?team=0" with the k-th of "Tennis?team=1").
- otherwise all agents play one court.

Teams are the behaviours "Name?team=0", "Name?team=1", ... of one behaviour name; anything else
is refused before a step is played.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnityBuildError


def team_of(behaviour: str) -> tuple[str, int]:
    """("Name", team) of an ML-Agents behaviour name "Name?team=k" (team 0 without one)."""
    head, sep, tail = behaviour.rpartition("?team=")
    return (head, int(tail)) if sep and tail.isdigit() else (behaviour, 0)


@dataclass(frozen=True)
class Agents:
    """The agents of one behaviour at the first decision: ids and group ids, as ML-Agents
    reports them."""

    ids: np.ndarray
    groups: np.ndarray


@dataclass(frozen=True)
class Courts:
    """The agent map: ``seats[behaviour][agent id] = (court, seat)``; ``names`` one per seat."""

    num_courts: int
    num_agents: int
    seats: dict[str, dict[int, tuple[int, int]]]
    names: list[str]


def order_behaviours(names: list[str], where: str) -> list[str]:
    """The behaviours in team order; a UnityBuildError unless they are one behaviour or the
    teams of one."""
    bases = {team_of(n)[0] for n in names}
    teams = sorted(team_of(n)[1] for n in names)
    if len(bases) != 1 or len(set(teams)) != len(teams):
        raise UnityBuildError(
            f"{where}: the build has behaviours {sorted(names)}; the adapter plays one behaviour "
            "or the teams of one (Name?team=0, Name?team=1, ...)")
    return sorted(names, key=lambda n: team_of(n)[1])


def map_courts(agents: dict[str, Agents], agents_per_court: int | None, where: str) -> Courts:
    """The agent map of ``agents`` (behaviours in team order) by the module's rules."""
    order = list(agents)
    counts = {name: len(a.ids) for name, a in agents.items()}
    if 0 in counts.values():
        raise UnityBuildError(f"{where}: behaviours without agents at the start: {counts}")
    if len(order) > 1 and len(set(counts.values())) != 1:
        raise UnityBuildError(f"{where}: the teams have {counts} agents; every court needs the "
                              "same number of each team")
    groups = np.concatenate([a.groups for a in agents.values()])
    if agents_per_court is None and (groups > 0).all():
        return _by_group(agents, where)
    teams, per_team = len(order), counts[order[0]]
    if agents_per_court is None:
        agents_per_court = teams if teams > 1 else per_team
    if agents_per_court % teams or per_team % (agents_per_court // teams):
        raise UnityBuildError(
            f"{where}: {per_team} agents in each of {teams} team(s) do not make courts of "
            f"agents_per_court={agents_per_court} (each court takes the same number of every "
            "team's agents)")
    q = agents_per_court // teams
    seats: dict[str, dict[int, tuple[int, int]]] = {}
    for t, name in enumerate(order):
        ids = sorted(int(i) for i in agents[name].ids)
        seats[name] = {aid: (k // q, t * q + k % q) for k, aid in enumerate(ids)}
    names = [f"{name}#{j}" if q > 1 else name for name in order for j in range(q)]
    return Courts(per_team // q, agents_per_court, seats, names)


def _by_group(agents: dict[str, Agents], where: str) -> Courts:
    members: dict[int, list[tuple[int, str, int]]] = {}
    for t, (name, a) in enumerate(agents.items()):
        for aid, group in zip(a.ids, a.groups):
            members.setdefault(int(group), []).append((t, name, int(aid)))
    sizes = {g: len(m) for g, m in sorted(members.items())}
    if len(set(sizes.values())) != 1:
        raise UnityBuildError(
            f"{where}: the build's multi-agent groups have different sizes {sizes} (group id: "
            "agents); set agents_per_court to say how its agents form courts")
    seats: dict[str, dict[int, tuple[int, int]]] = {name: {} for name in agents}
    first: list[str] = []
    for court, group in enumerate(sorted(members)):
        for seat, (_, name, aid) in enumerate(sorted(members[group])):
            seats[name][aid] = (court, seat)
            if court == 0:
                first.append(f"{name}#{seat}")
    return Courts(len(members), len(first), seats, first)
