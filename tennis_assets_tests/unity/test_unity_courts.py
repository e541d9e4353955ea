"""How a build's agents form courts (tennis_assets.unity.courts), from what ML-Agents reports:
behaviours, agent ids and multi-agent group ids."""

from __future__ import annotations

import numpy as np
import pytest

from tennis_assets.unity.courts import Agents, map_courts, order_behaviours, team_of
from tennis_assets.unity.errors import UnityBuildError


def agents(ids, groups=None) -> Agents:
    return Agents(np.asarray(ids), np.asarray(groups if groups is not None else [0] * len(ids)))


def test_team_names():
    assert team_of("Tennis?team=1") == ("Tennis", 1)
    assert team_of("TennisBrain") == ("TennisBrain", 0)
    assert order_behaviours(["Soccer?team=1", "Soccer?team=0"], "x") == ["Soccer?team=0",
                                                                        "Soccer?team=1"]
    with pytest.raises(UnityBuildError, match=r"x: the build has behaviours \['Goalie\?team=1', "
                                              r"'Striker\?team=0'\]; the adapter plays one"):
        order_behaviours(["Striker?team=0", "Goalie?team=1"], "x")


def test_teams_pair_the_kth_agent_of_each_team():
    # ML-Agents 1.x Tennis: ids interleaved between the teams, in any order.
    courts = map_courts({"T?team=0": agents([4, 0, 2]), "T?team=1": agents([5, 1, 3])}, None, "")
    assert (courts.num_courts, courts.num_agents) == (3, 2)
    assert courts.seats == {"T?team=0": {0: (0, 0), 2: (1, 0), 4: (2, 0)},
                            "T?team=1": {1: (0, 1), 3: (1, 1), 5: (2, 1)}}
    assert courts.names == ["T?team=0", "T?team=1"]


def test_one_behaviour_is_one_court_unless_told():
    one = map_courts({"B": agents([7, 3, 5, 1])}, None, "")
    assert (one.num_courts, one.num_agents) == (1, 4)
    assert one.seats["B"] == {1: (0, 0), 3: (0, 1), 5: (0, 2), 7: (0, 3)}
    pairs = map_courts({"B": agents([7, 3, 5, 1])}, 2, "")
    assert pairs.seats["B"] == {1: (0, 0), 3: (0, 1), 5: (1, 0), 7: (1, 1)}
    assert pairs.names == ["B#0", "B#1"]


def test_groups_are_courts_and_agents_per_court_overrides_them():
    # Three areas of two agents each, ids not in area order.
    found = map_courts({"P": agents([0, 1, 2, 3, 4, 5], [9, 4, 4, 9, 7, 7])}, None, "")
    assert found.num_courts == 3 and found.num_agents == 2
    assert found.seats["P"] == {1: (0, 0), 2: (0, 1), 4: (1, 0), 5: (1, 1), 0: (2, 0), 3: (2, 1)}
    told = map_courts({"P": agents([0, 1, 2, 3, 4, 5], [9, 4, 4, 9, 7, 7])}, 3, "")
    assert told.num_courts == 2 and told.seats["P"][3] == (1, 0)


def test_teams_with_several_agents_per_court():
    # Two teams of four agents, two of each team per court: seats team by team.
    courts = map_courts({"S?team=0": agents([0, 1, 2, 3]), "S?team=1": agents([10, 11, 12, 13])},
                        4, "")
    assert courts.num_courts == 2 and courts.names == ["S?team=0#0", "S?team=0#1",
                                                       "S?team=1#0", "S?team=1#1"]
    assert courts.seats["S?team=1"] == {10: (0, 2), 11: (0, 3), 12: (1, 2), 13: (1, 3)}


@pytest.mark.parametrize("reported, per_court, message", [
    ({"B": agents([0, 1, 2])}, 2, (r"build: 3 agents in each of 1 team\(s\) do not make courts "
                                   r"of agents_per_court=2")),
    ({"T?team=0": agents([0, 1]), "T?team=1": agents([2])}, None,
     r"the teams have \{'T\?team=0': 2, 'T\?team=1': 1\} agents"),
    ({"T?team=0": agents([0]), "T?team=1": agents([1])}, 3, r"agents_per_court=3"),
    ({"P": agents([0, 1, 2], [1, 1, 2])}, None,
     r"multi-agent groups have different sizes \{1: 2, 2: 1\}.*set agents_per_court"),
    ({"B": agents([])}, None, r"behaviours without agents at the start"),
])
def test_agents_that_do_not_form_courts_are_refused(reported, per_court, message):
    with pytest.raises(UnityBuildError, match=message):
        map_courts(reported, per_court, "build")
