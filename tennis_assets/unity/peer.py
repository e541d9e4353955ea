"""A protocol peer: plays the Unity side of the ML-Agents protocol, serving VecTennis courts.

In ML-Agents, Python (``mlagents_envs.UnityEnvironment``) is the gRPC server, bound to
base_port + worker_id (5004 for the Editor), and Unity is the client. This process is that
client, over real gRPC with mlagents-envs' own ``UnityToExternalProtoStub`` (one RPC,
``Exchange``, carrying a ``UnityMessageProto``). Each call sends Unity's output and its reply is
Python's next input:

1. send the initialization output (behaviour parameters) with every agent's first info; the
   reply carries the seed and the Python side's versions;
2. send an empty message; the reply is the first command (normally RESET);
3. from then on send the outcome of the last command (agent infos) and receive the next one
   (RESET, or STEP with the actions of every agent that asked for a decision), until a reply with
   header status 400 (Python closed) or a QUIT command.

Layouts (``layout``): ``teams`` is what ML-Agents 1.x Tennis builds report, one behaviour per
team ("Tennis?team=0", "Tennis?team=1") with one agent per court; ``single`` is the 0.4-era
build, one behaviour with both players of every court. ``agents`` other than 2 and ``discrete``
emulate builds the adapter must refuse.

Usage: ``python -m tennis_assets.unity.peer --port 5005 [--courts 4]``. It also accepts the
arguments UnityEnvironment passes to a build (``--mlagents-port N -nographics -batchmode``), so
a two-line launcher script (``--write-launcher PATH``) stands in for a Unity binary.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from . import protobuf_compat  # noqa: F401  (before any mlagents_envs import)

ENGINE_CHANNEL = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
# tennis_assets' own side channel: the seed of the next reset (a real build ignores it).
SEED_CHANNEL = uuid.UUID("2f6c1d8e-7b5a-4c1e-9d3f-5e1a7c9b0d42")
TIME_SCALE = 2  # EngineConfigurationChannel.ConfigurationType.TIME_SCALE
COMMUNICATION_VERSION = "1.5.0"


class PeerError(RuntimeError):
    """The Python side did something the peer cannot serve."""


class TennisPeer:
    """The Unity side of one ML-Agents connection, serving ``courts`` VecTennis courts.

    stall_after / exit_after / quit_after (exchanges) emulate a build that hangs, crashes, or
    quits politely (a header with status 400, as Unity sends when its player closes) mid-run.
    ``run()`` returns when Python closes the connection; ``stop()`` ends it from another thread.
    """

    def __init__(self, port: int, host: str = "localhost", courts: int = 1, agents: int = 2,
                 discrete: bool = False, layout: str = "teams", params=None,
                 connect_timeout: float = 30.0, stall_after: int | None = None,
                 exit_after: int | None = None, quit_after: int | None = None) -> None:
        if layout not in ("teams", "single"):
            raise ValueError(f"layout={layout!r}: expected 'teams' or 'single'")
        if agents < 1 or courts < 1:
            raise ValueError(f"agents={agents}, courts={courts}: both must be >= 1")
        self.address = f"{host}:{int(port)}"
        self.courts, self.agents, self.discrete, self.layout = courts, agents, discrete, layout
        self.params = params
        self.connect_timeout = connect_timeout
        self.stall_after, self.exit_after = stall_after, exit_after
        self.quit_after = quit_after
        self.exchanges = 0
        self.hard_exit = False  # exit_after ends the whole process (set by main())
        self.seed: int | None = None  # from the initialization input
        self.time_scale: float | None = None  # last value Python's engine channel sent
        self.commands: list[str] = []
        self._stopped = threading.Event()
        self._channel = None
        self._env = None
        self._next_seed: int | None = None
        # behaviour name -> [(court, agent)] in the order of the decision infos last sent, which
        # is the order Python returns actions in.
        self._decision_rows: dict[str, list[tuple[int, int]]] = {}

    # ------------------------------------------------------------------ layout
    def behaviours(self) -> dict[str, list[int]]:
        """behaviour name -> the seats (agent indices within a court) it controls."""
        if self.layout == "single":
            return {"TennisBrain": list(range(self.agents))}
        return {f"Tennis?team={k}": [k] for k in range(self.agents)}

    def _agent_id(self, court: int, seat: int) -> int:
        return court * self.agents + seat

    # ------------------------------------------------------------------ messages
    def _info(self, proto, court, seat, obs, reward=0.0, done=False, max_step=False):
        info = proto.add()
        info.id = self._agent_id(court, seat)
        info.reward = float(reward)
        info.done = bool(done)
        info.max_step_reached = bool(max_step)
        o = info.observations.add()
        o.shape.append(obs.shape[-1])
        o.float_data.data.extend(obs.tolist())
        o.name = "VectorSensor"
        return info

    def _output(self, obs, res=None):
        """UnityRLOutputProto for every agent: terminal infos for finished courts, then a
        decision request from every agent (the new episode's first obs after a reset)."""
        from mlagents_envs.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto

        out = UnityRLOutputProto()
        self._decision_rows = {}
        for name, seats in self.behaviours().items():
            infos = out.agentInfos[name].value
            rows = []
            for c in range(self.courts):
                for seat in seats:
                    player = seat % 2  # seats beyond the two players mirror them
                    if res is not None and res.done[c]:
                        self._info(infos, c, seat, res.final_obs[c, player],
                                   res.rewards[c, player], done=True,
                                   max_step=bool(res.truncated[c]))
                        reward = 0.0
                    else:
                        reward = 0.0 if res is None else res.rewards[c, player]
                    self._info(infos, c, seat, obs[c, player], reward)
                    rows.append((c, seat))
            self._decision_rows[name] = rows
        return out

    def _initialization(self, obs):
        from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

        msg = UnityMessageProto()
        msg.header.status = 200
        init = msg.unity_output.rl_initialization_output
        init.name = "TennisPeer"
        init.communication_version = COMMUNICATION_VERSION
        init.package_version = "tennis-assets-peer"
        caps = init.capabilities
        caps.baseRLCapabilities = caps.hybridActions = caps.trainingAnalytics = True
        caps.variableLengthObservation = caps.multiAgentGroups = True
        for name in self.behaviours():
            brain = init.brain_parameters.add()
            brain.brain_name = name
            brain.is_training = True
            if self.discrete:
                brain.action_spec.num_discrete_actions = 2
                brain.action_spec.discrete_branch_sizes.extend([3, 3])
            else:
                brain.action_spec.num_continuous_actions = 2
        msg.unity_output.rl_output.CopyFrom(self._output(obs))
        return msg

    def _actions(self, rl_input) -> np.ndarray:
        actions = np.zeros((self.courts, 2, 2), dtype=np.float32)
        for name, rows in self._decision_rows.items():
            sent = rl_input.agent_actions[name].value if name in rl_input.agent_actions else []
            if len(sent) not in (0, len(rows)):
                raise PeerError(f"behaviour {name}: {len(sent)} actions for {len(rows)} agents")
            for (court, seat), action in zip(rows, sent):
                values = action.continuous_actions or action.vector_actions_deprecated
                if seat < 2 and len(values) >= 2:
                    actions[court, seat] = values[:2]
        return actions

    def _read_side_channel(self, data: bytes) -> None:
        from mlagents_envs.side_channel import IncomingMessage

        offset = 0
        while offset + 20 <= len(data):
            channel = uuid.UUID(bytes_le=bytes(data[offset:offset + 16]))
            size = int.from_bytes(data[offset + 16:offset + 20], "little", signed=True)
            body = IncomingMessage(bytes(data[offset + 20:offset + 20 + size]))
            offset += 20 + size
            if channel == ENGINE_CHANNEL and body.read_int32() == TIME_SCALE:
                self.time_scale = body.read_float32()
            elif channel == SEED_CHANNEL:
                self._next_seed = int(body.read_string())

    # ------------------------------------------------------------------ the loop
    def _exchange(self, stub, msg):
        self.exchanges += 1
        if self.exit_after is not None and self.exchanges > self.exit_after:
            # A crashing build: no goodbye, the socket just goes away.
            self.close()
            if self.hard_exit:
                os._exit(3)
            raise PeerError("exit_after reached")
        if self.quit_after is not None and self.exchanges > self.quit_after:
            from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

            goodbye = UnityMessageProto()
            goodbye.header.status = 400
            stub.Exchange(goodbye)
            self._stopped.set()
            return goodbye
        if self.stall_after is not None and self.exchanges > self.stall_after:
            self._stopped.wait()  # a hung build: never answers again
            raise PeerError("stopped while stalled")
        return stub.Exchange(msg, wait_for_ready=True)

    def run(self) -> int:
        """Serve until Python closes; returns the number of exchanges."""
        import grpc

        from mlagents_envs.communicator_objects.command_pb2 import QUIT, RESET, STEP
        from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
        from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import (
            UnityToExternalProtoStub)

        from tennis_assets.sim import VecTennis

        # Started before the trainer, gRPC's default 1 s (then growing) reconnect backoff would
        # delay every connection by a second or more.
        self._channel = grpc.insecure_channel(self.address, options=[
            ("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 500)])
        ready = grpc.channel_ready_future(self._channel)
        deadline = time.monotonic() + self.connect_timeout
        while True:  # in slices, so that stop() ends the wait
            try:
                ready.result(timeout=0.1)
                break
            except grpc.FutureTimeoutError:
                if self._stopped.is_set() or time.monotonic() > deadline:
                    ready.cancel()
                    self.close()
                    if self._stopped.is_set():
                        return self.exchanges
                    raise PeerError(f"no ML-Agents trainer listening on {self.address} after "
                                    f"{self.connect_timeout} s") from None
        stub = UnityToExternalProtoStub(self._channel)
        try:
            # The first obs only tells Python the observation shape; the real first episode is
            # served after the seed arrives.
            first = VecTennis(self.courts, params=self.params, seed=0).reset()
            reply = self._exchange(stub, self._initialization(first))
            if reply.header.status != 200:
                return self.exchanges
            self.seed = int(reply.unity_input.rl_initialization_input.seed)
            self._env = env = VecTennis(self.courts, params=self.params, seed=self.seed)
            msg = UnityMessageProto()
            msg.header.status = 200
            while not self._stopped.is_set():
                reply = self._exchange(stub, msg)
                if reply.header.status != 200:
                    break  # 400: Python closed the environment
                rl_input = reply.unity_input.rl_input
                self._read_side_channel(rl_input.side_channel)
                msg = UnityMessageProto()
                msg.header.status = 200
                if rl_input.command == QUIT:
                    break
                if rl_input.command == RESET:
                    self.commands.append("reset")
                    obs = env.reset(seed=self._next_seed)
                    self._next_seed = None
                    msg.unity_output.rl_output.CopyFrom(self._output(obs))
                elif rl_input.command == STEP:
                    self.commands.append("step")
                    res = env.step(self._actions(rl_input))
                    msg.unity_output.rl_output.CopyFrom(self._output(res.obs, res))
        except grpc.RpcError as exc:
            # Python closing the server while a call is pending is a normal end, as for Unity.
            if not self._stopped.is_set() and exc.code() not in (grpc.StatusCode.CANCELLED,
                                                                  grpc.StatusCode.UNAVAILABLE):
                raise PeerError(f"ML-Agents exchange failed: {exc.code().name} "
                                f"{exc.details()}") from None
        finally:
            self.close()
        return self.exchanges

    def stop(self) -> None:
        self._stopped.set()
        self.close()

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def start_in_thread(port: int, **options) -> tuple[TennisPeer, threading.Thread]:
    """Run a peer in a daemon thread of this process (tests, notebooks)."""
    peer = TennisPeer(port, **options)
    errors: list[BaseException] = []

    def target():
        try:
            peer.run()
        except BaseException as exc:  # kept for the caller; a thread cannot raise to it
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"tennis-peer-{port}", daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return peer, thread


def write_launcher(path: str | os.PathLike, python: str | None = None, **options) -> Path:
    """Write an executable script that UnityEnvironment can launch as if it were a Unity build
    (it passes ``--mlagents-port N``); ``options`` become peer arguments (courts=4 -> --courts 4).
    """
    path = Path(path)
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    root = Path(__file__).resolve().parents[2]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n# A stand-in Unity build: the tennis-assets protocol peer.\n"
                    f"cd '{root}' && exec '{python or sys.executable}' -m tennis_assets.unity.peer "
                    f"{' '.join(args)} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tennis_assets.unity.peer",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--port", "--mlagents-port", dest="port", type=int, default=None,
                    help="the trainer's port (base_port + worker_id; 5004 for an Editor)")
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--courts", type=int, default=1)
    ap.add_argument("--agents", type=int, default=2, help="agents per court (2 for Tennis)")
    ap.add_argument("--discrete", action="store_true", help="report a discrete action space")
    ap.add_argument("--layout", choices=("teams", "single"), default="teams")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--stall-after", type=int, default=None, help="hang after N exchanges")
    ap.add_argument("--exit-after", type=int, default=None, help="crash after N exchanges")
    ap.add_argument("--quit-after", type=int, default=None, help="quit after N exchanges")
    ap.add_argument("--write-launcher", metavar="PATH", default=None,
                    help="write an executable stand-in build with these options and exit")
    # Unity player arguments that UnityEnvironment adds (-nographics, -batchmode, -logFile).
    args, _unity_args = ap.parse_known_args(argv)
    options = {"courts": args.courts, "agents": args.agents, "discrete": args.discrete,
               "layout": args.layout, "stall_after": args.stall_after,
               "exit_after": args.exit_after, "quit_after": args.quit_after}
    if args.write_launcher:
        print(write_launcher(args.write_launcher, **options))
        return 0
    if args.port is None:
        ap.error("--port is required")
    peer = TennisPeer(args.port, host=args.host, connect_timeout=args.connect_timeout, **options)
    peer.hard_exit = True
    try:
        peer.run()
    except PeerError as exc:
        print(f"tennis peer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
