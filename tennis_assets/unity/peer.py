"""A protocol peer: plays the Unity side of the ML-Agents protocol, serving the courts of any
environment ``tennis_assets.envs.make_env`` builds (the built-in Tennis, a PettingZoo
ParallelEnv with continuous spaces, ...).

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

What the environment gives becomes what a build reports (``tennis_assets.unity.messages``):
its observation and action sizes the behaviour spec, each court's agents the agent ids
court * agents + seat, rewards and episode ends the agent infos (a terminal info where an
agent's episode ends, then the decision request of the court's next episode; an agent that
leaves early ends and stops asking).

Layouts (``layout``): ``teams`` is what ML-Agents 1.x Tennis builds report, one behaviour per
seat ("Tennis?team=0", "Tennis?team=1") with one agent per court; ``single`` one behaviour with
every agent (0.4-era "TennisBrain"; "<name>?team=0" for other environments). ``groups`` reports
each court as an ML-Agents multi-agent group. ``agents`` other than the environment's and
``discrete`` emulate builds the adapter must refuse.

Usage: ``python -m tennis_assets.unity.peer --port 5005 [--courts 4] [--env SPEC
--env-kwargs JSON]``. It also accepts the arguments UnityEnvironment passes to a build
(``--mlagents-port N -nographics -batchmode``), so a two-line launcher script
(``--write-launcher PATH``) stands in for a Unity binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tennis_assets.config.options import add_model_options, given
from tennis_assets.envs.config import EnvironmentConfig

from . import protobuf_compat  # noqa: F401  (before any mlagents_envs import)
from .messages import SEED_CHANNEL, Layout, LayoutOptions, Reporter, read_side_channel

__all__ = [
    "SEED_CHANNEL",
    "PeerError",
    "ProtocolPeer",
    "main",
    "start_in_thread",
    "write_launcher",
]


class PeerError(RuntimeError):
    """The Python side did something the peer cannot serve."""


def _environment(environment: Any):
    from tennis_assets.envs import EnvironmentConfig

    if environment is None:
        return EnvironmentConfig()
    if isinstance(environment, EnvironmentConfig):
        return environment
    return EnvironmentConfig.from_dict(environment)


class ProtocolPeer:
    """The Unity side of one ML-Agents connection, serving ``courts`` courts of
    ``environment`` (an EnvironmentConfig or its dict; default Tennis).

    layout, behaviour, groups, agents, discrete: what the peer reports (module docstring).
    stall_after / exit_after / quit_after (exchanges) emulate a build that hangs, crashes, or
    quits politely (a header with status 400, as Unity sends when its player closes) mid-run.
    ``run()`` returns when Python closes the connection; ``stop()`` ends it from another thread.
    """

    def __init__(self, port: int, host: str = "localhost", courts: int = 1,
                 environment: Any = None, layout: str | None = None,
                 behaviour: str | None = None, groups: bool = False, agents: int | None = None,
                 discrete: bool = False, connect_timeout: float = 30.0,
                 stall_after: int | None = None, exit_after: int | None = None,
                 quit_after: int | None = None) -> None:
        if courts < 1:
            raise ValueError(f"courts={courts}: must be >= 1")
        self.address = f"{host}:{int(port)}"
        self.courts = courts
        self.environment = _environment(environment)
        self.layout_options = LayoutOptions(layout=layout, behaviour=behaviour, groups=groups,
                                            agents=agents, discrete=discrete)
        Layout.check(**self.layout_options)
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

    def _connect(self) -> bool:
        """Wait for the trainer's server; False when stopped first."""
        import grpc

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
                return True
            except grpc.FutureTimeoutError:
                if self._stopped.is_set() or time.monotonic() > deadline:
                    ready.cancel()
                    self.close()
                    if self._stopped.is_set():
                        return False
                    raise PeerError(f"no ML-Agents trainer listening on {self.address} after "
                                    f"{self.connect_timeout} s") from None

    def run(self) -> int:
        """Serve until Python closes; returns the number of exchanges."""
        import grpc
        from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import (
            UnityToExternalProtoStub,
        )

        from tennis_assets.envs import make_env

        if not self._connect():
            return self.exchanges
        stub = UnityToExternalProtoStub(self._channel)
        try:
            # The first obs only tells Python the shapes; the first episode is served after the
            # seed arrives (an environment reset with a seed serves what one built with it does).
            self._env = env = make_env(self.environment, self.courts, seed=0)
            reporter = Reporter(Layout(env, self.environment, **self.layout_options),
                                self.courts)
            reply = self._exchange(stub, reporter.initialization(env.reset()))
            if reply.header.status != 200:
                return self.exchanges
            self.seed = int(reply.unity_input.rl_initialization_input.seed)
            env.reset(seed=self.seed)
            self._serve(stub, env, reporter)
        except grpc.RpcError as exc:
            # Python closing the server while a call is pending is a normal end, as for Unity.
            if not self._stopped.is_set() and exc.code() not in (grpc.StatusCode.CANCELLED,
                                                                  grpc.StatusCode.UNAVAILABLE):
                raise PeerError(f"ML-Agents exchange failed: {exc.code().name} "
                                f"{exc.details()}") from None
        finally:
            self.close()
            env, self._env = self._env, None
            if env is not None and callable(getattr(env, "close", None)):
                env.close()
        return self.exchanges

    def _serve(self, stub, env, reporter: Reporter) -> None:
        """Answer commands until Python closes or quits."""
        from mlagents_envs.communicator_objects.command_pb2 import QUIT, RESET, STEP

        msg = reporter.message()
        while not self._stopped.is_set():
            reply = self._exchange(stub, msg)
            if reply.header.status != 200:
                break  # 400: Python closed the environment
            rl_input = reply.unity_input.rl_input
            channel = read_side_channel(rl_input.side_channel)
            self.time_scale = channel.get("time_scale", self.time_scale)
            self._next_seed = channel.get("seed", self._next_seed)
            if rl_input.command == QUIT:
                break
            msg = reporter.message()
            if rl_input.command == RESET:
                self.commands.append("reset")
                obs = env.reset(seed=self._next_seed)
                self._next_seed = None
                msg.unity_output.rl_output.CopyFrom(reporter.output(obs, acting=_acting(env)))
            elif rl_input.command == STEP:
                self.commands.append("step")
                try:
                    actions = reporter.actions(rl_input)
                except ValueError as exc:
                    raise PeerError(str(exc)) from None
                res = env.step(actions)
                msg.unity_output.rl_output.CopyFrom(
                    reporter.output(res.obs, res, acting=_acting(env)))

    def stop(self) -> None:
        self._stopped.set()
        self.close()

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def _acting(env):
    """Who acts at the next step: the environment's ``acting`` mask, else every agent."""
    return getattr(env, "acting", None)


def start_in_thread(port: int, **options) -> tuple[ProtocolPeer, threading.Thread]:
    """Run a peer in a daemon thread of this process (tests, notebooks)."""
    peer = ProtocolPeer(port, **options)
    errors: list[BaseException] = []

    def target():
        try:
            peer.run()
        except BaseException as exc:  # noqa: BLE001 - for the caller: a thread cannot raise to it
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"protocol-peer-{port}", daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return peer, thread


def _flags(options: dict[str, Any]) -> list[str]:
    """``options`` as peer arguments: courts=4 -> --courts 4, a dict as JSON."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        elif value not in (None, False):
            args += [flag, str(value)]
    return args


def write_launcher(path: str | os.PathLike, python: str | None = None, **options) -> Path:
    """Write an executable script that UnityEnvironment can launch as if it were a Unity build
    (it passes ``--mlagents-port N``); ``options`` become peer arguments (courts=4 -> --courts 4,
    env="pettingzoo:...", env_kwargs={...})."""
    path = Path(path)
    root = Path(__file__).resolve().parents[2]
    command = [python or sys.executable, "-m", "tennis_assets.unity.peer", *_flags(options)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n# A stand-in Unity build: the tennis-assets protocol peer.\n"
                    f"cd {shlex.quote(str(root))} && exec {shlex.join(command)} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tennis_assets.unity.peer",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--port", "--mlagents-port", dest="port", type=int, default=None,
                    help="the trainer's port (base_port + worker_id; 5004 for an Editor)")
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--courts", type=int, default=1)
    # The environment it plays, as every command takes one: --env and --env-kwargs.
    add_model_options(ap, EnvironmentConfig, only=("env", "env_kwargs"))
    ap.add_argument("--layout", choices=("teams", "single"), default=None,
                    help="default: teams for Tennis, single otherwise")
    ap.add_argument("--behaviour", default=None, help="the behaviour name reported")
    ap.add_argument("--groups", action="store_true",
                    help="report each court as a multi-agent group")
    ap.add_argument("--agents", type=int, default=None,
                    help="agents reported per court (default: the environment's)")
    ap.add_argument("--discrete", action="store_true", help="report a discrete action space")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--stall-after", type=int, default=None, help="hang after N exchanges")
    ap.add_argument("--exit-after", type=int, default=None, help="crash after N exchanges")
    ap.add_argument("--quit-after", type=int, default=None, help="quit after N exchanges")
    ap.add_argument("--write-launcher", metavar="PATH", default=None,
                    help="write an executable stand-in build with these options and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    # Unity player arguments that UnityEnvironment adds (-nographics, -batchmode, -logFile).
    args, _unity_args = ap.parse_known_args(argv)
    try:
        environment = EnvironmentConfig(**given(args, EnvironmentConfig))
    except ValueError as exc:
        ap.error(str(exc))
    env_kwargs = environment.env_kwargs
    options = {"courts": args.courts, "layout": args.layout, "behaviour": args.behaviour,
               "groups": args.groups, "agents": args.agents, "discrete": args.discrete,
               "stall_after": args.stall_after, "exit_after": args.exit_after,
               "quit_after": args.quit_after}
    if args.write_launcher:
        print(write_launcher(args.write_launcher, env=environment.env, env_kwargs=env_kwargs,
                             **options))
        return 0
    if args.port is None:
        ap.error("--port is required")
    try:
        peer = ProtocolPeer(args.port, host=args.host, connect_timeout=args.connect_timeout,
                            environment={"env": environment.env, "env_kwargs": env_kwargs},
                            **options)
    except ValueError as exc:
        print(f"protocol peer: {exc}", file=sys.stderr)
        return 2
    peer.hard_exit = True
    try:
        peer.run()
    except (PeerError, ValueError) as exc:
        print(f"protocol peer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
