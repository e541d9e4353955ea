"""What the protocol peer reports, as a Unity build would: behaviour parameters from the
environment's shapes, agent infos from its steps, and the actions Python sends back.

Agent ids are court * agents + seat. Per step and agent, in the order ML-Agents sends them: a
terminal info where the agent's episode ended (its final observation and reward, Max Step where
the episode was cut short), then a decision request where it acts next (its observation; the
reward of the step unless a terminal info carried it). An agent that left its court's episode
early sends its terminal info once and no request until its court's next episode.
"""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

import numpy as np

from . import protobuf_compat  # noqa: F401  (before any mlagents_envs import)

ENGINE_CHANNEL = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
# tennis_assets' own side channel: the seed of the next reset (a real build ignores it).
SEED_CHANNEL = uuid.UUID("2f6c1d8e-7b5a-4c1e-9d3f-5e1a7c9b0d42")
TIME_SCALE = 2  # EngineConfigurationChannel.ConfigurationType.TIME_SCALE
COMMUNICATION_VERSION = "1.5.0"


def read_side_channel(data: bytes) -> dict[str, Any]:
    """The values Python's side channels carried: ``time_scale`` (engine configuration) and
    ``seed`` (the seed of the next reset), where sent."""
    from mlagents_envs.side_channel import IncomingMessage

    found: dict[str, Any] = {}
    offset = 0
    while offset + 20 <= len(data):
        channel = uuid.UUID(bytes_le=bytes(data[offset:offset + 16]))
        size = int.from_bytes(data[offset + 16:offset + 20], "little", signed=True)
        body = IncomingMessage(bytes(data[offset + 20:offset + 20 + size]))
        offset += 20 + size
        if channel == ENGINE_CHANNEL and body.read_int32() == TIME_SCALE:
            found["time_scale"] = body.read_float32()
        elif channel == SEED_CHANNEL:
            found["seed"] = int(body.read_string())  # a string: seeds exceed int32
    return found


class LayoutOptions(TypedDict):
    """Layout's keyword arguments: how the agents are named and grouped."""

    layout: str | None
    behaviour: str | None
    groups: bool
    agents: int | None
    discrete: bool


class Layout:
    """The behaviours a build reports for ``env`` (an open vectorized environment of
    ``environment``), and which seats each controls.

    layout: "teams" (one behaviour per seat, "<name>?team=k") or "single" (one behaviour);
    default teams for Tennis, single otherwise. behaviour: the name (default "Tennis" for
    teams and "TennisBrain" for single Tennis, else the environment's callable's module, e.g.
    "simple_spread_v3?team=0"). groups: every court a multi-agent group (group id court + 1).
    agents: seats reported per court (beyond the environment's they mirror its agents).
    discrete: report a discrete action space."""

    def __init__(self, env: Any, environment: Any, layout: str | None = None,
                 behaviour: str | None = None, groups: bool = False, agents: int | None = None,
                 discrete: bool = False) -> None:
        self.check(layout, behaviour, groups, agents, discrete)
        tennis = environment.kind == "tennis"
        self.layout = layout or ("teams" if tennis else "single")
        self.env_agents, self.obs_size = env.num_agents, env.obs_size
        self.action_size = env.action_size
        self.agents = agents or env.num_agents
        self.groups, self.discrete = groups, discrete
        module = environment.target.partition(":")[0].rpartition(".")[2]
        if self.layout == "teams":
            base = behaviour or ("Tennis" if tennis else module)
            self.behaviours = {f"{base}?team={k}": [k] for k in range(self.agents)}
        else:
            name = behaviour or ("TennisBrain" if tennis else f"{module}?team=0")
            self.behaviours = {name: list(range(self.agents))}

    @staticmethod
    def check(layout: str | None = None, behaviour: str | None = None, groups: bool = False,
              agents: int | None = None, discrete: bool = False) -> None:
        if layout not in (None, "teams", "single"):
            raise ValueError(f"layout={layout!r}: expected 'teams' or 'single'")
        if agents is not None and agents < 1:
            raise ValueError(f"agents={agents}: must be >= 1")
        if behaviour is not None and not behaviour:
            raise ValueError("behaviour: an empty name")

    def agent_id(self, court: int, seat: int) -> int:
        return court * self.agents + seat


class Reporter:
    """Builds the peer's messages and reads Python's actions back, remembering which agents
    asked for a decision (the order Python returns their actions in)."""

    def __init__(self, layout: Layout, courts: int) -> None:
        self.layout, self.courts = layout, courts
        # behaviour name -> [(court, seat)] in the order of the decision requests last sent
        self.decision_rows: dict[str, list[tuple[int, int]]] = {}

    @staticmethod
    def message():
        from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

        msg = UnityMessageProto()
        msg.header.status = 200
        return msg

    def initialization(self, obs: np.ndarray):
        """The first message: capabilities, behaviour parameters and every agent's first info."""
        msg = self.message()
        init = msg.unity_output.rl_initialization_output
        init.name = "ProtocolPeer"
        init.communication_version = COMMUNICATION_VERSION
        init.package_version = "tennis-assets-peer"
        caps = init.capabilities
        caps.baseRLCapabilities = caps.hybridActions = caps.trainingAnalytics = True
        caps.variableLengthObservation = caps.multiAgentGroups = True
        for name in self.layout.behaviours:
            brain = init.brain_parameters.add()
            brain.brain_name = name
            brain.is_training = True
            if self.layout.discrete:
                brain.action_spec.num_discrete_actions = 2
                brain.action_spec.discrete_branch_sizes.extend([3, 3])
            else:
                brain.action_spec.num_continuous_actions = self.layout.action_size
        msg.unity_output.rl_output.CopyFrom(self.output(obs))
        return msg

    def _info(self, infos, court: int, seat: int, obs: np.ndarray, reward: float = 0.0,
              done: bool = False, max_step: bool = False) -> None:
        info = infos.add()
        info.id = self.layout.agent_id(court, seat)
        info.reward = float(reward)
        info.done = bool(done)
        info.max_step_reached = bool(max_step)
        if self.layout.groups:
            info.group_id = court + 1
        o = info.observations.add()
        o.shape.append(obs.shape[-1])
        o.float_data.data.extend(obs.tolist())
        o.name = "VectorSensor"

    def output(self, obs: np.ndarray, res: Any = None, acting: np.ndarray | None = None):
        """UnityRLOutputProto of a reset (``res`` None) or a step: terminal infos where
        episodes ended, then a decision request from every agent in ``acting`` (None: all)."""
        from mlagents_envs.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto

        out = UnityRLOutputProto()
        self.decision_rows = {}
        for name, seats in self.layout.behaviours.items():
            infos = out.agentInfos[name].value
            rows = []
            for c in range(self.courts):
                for seat in seats:
                    i = seat % self.layout.env_agents  # seats beyond the env's mirror its agents
                    if res is not None:
                        self._terminal(infos, c, seat, i, res, acting)
                    if acting is None or acting[c, i]:
                        # After a terminal info, the next episode's first request pays 0.
                        paid = res is None or res.done[c]
                        self._info(infos, c, seat, obs[c, i], 0.0 if paid else res.rewards[c, i])
                        rows.append((c, seat))
            self.decision_rows[name] = rows
        return out

    def _terminal(self, infos, c: int, seat: int, i: int, res: Any,
                  acting: np.ndarray | None) -> None:
        """The terminal info of agent i of court c, where its episode ended at this step."""
        terminated = None if res.agent_terminated is None else bool(res.agent_terminated[c, i])
        if res.done[c]:
            if res.active is not None and not res.active[c, i]:
                return  # it left earlier and said so then
            cut = bool(res.truncated[c]) and not terminated
        elif _left(res, acting, c, i):
            cut = terminated is False
        else:
            return
        self._info(infos, c, seat, res.final_obs[c, i], res.rewards[c, i], done=True,
                   max_step=cut)

    def actions(self, rl_input) -> np.ndarray:
        """Python's actions [courts, agents, action_size] (zeros for agents that did not act);
        ValueError where a behaviour's count does not match its decision requests."""
        lay = self.layout
        actions = np.zeros((self.courts, lay.env_agents, lay.action_size), dtype=np.float32)
        for name, rows in self.decision_rows.items():
            sent = rl_input.agent_actions[name].value if name in rl_input.agent_actions else []
            if len(sent) not in (0, len(rows)):
                raise ValueError(f"behaviour {name}: {len(sent)} actions for {len(rows)} agents")
            for (court, seat), action in zip(rows, sent):
                values = action.continuous_actions or action.vector_actions_deprecated
                if seat < lay.env_agents and len(values) >= lay.action_size:
                    actions[court, seat] = values[:lay.action_size]
        return actions


def _left(res: Any, acting: np.ndarray | None, c: int, i: int) -> bool:
    """Agent i of court c acted at this step and is no longer in its (ongoing) episode."""
    return (acting is not None and res.active is not None and bool(res.active[c, i])
            and not acting[c, i] and not res.done[c])
