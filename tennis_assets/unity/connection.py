"""mlagents-envs' UnityEnvironment with the few changes the adapter needs to fail cleanly.

Everything here is the real UnityEnvironment and RpcCommunicator; the subclasses only change
how they wait, how they start and how they shut down:

- RpcCommunicator waits for Unity in slices of ``timeout_wait // 10`` seconds, which is 0, a
  busy spin of a whole core, for any timeout under 10 s; here the slice is 50 ms to 1 s.
- Its ``close()`` stops the gRPC server without waiting, so the port can still be bound a moment
  later; here close returns once the server has stopped. A server that fails half-way through
  its start is stopped too.
- UnityEnvironment binds the port before it launches the build and cleans up after only some
  failures: a build that the kernel cannot run (``Exec format error``), one whose ``#!``
  interpreter is missing, a build that exits during the handshake or an interrupt left the
  server running (the next try said the port was taken) and the process unreaped. Here a build
  is checked before anything is bound (it exists, is a file, is executable), every failure of
  ``__init__`` closes both, and closing always reaps the process (killing it after a grace
  period), so no port or process outlives an error.

Import ``tennis_assets.unity`` (which installs protobuf_compat) before this module.
"""

from __future__ import annotations

import atexit
import errno
import glob
import os
import time
import uuid

from mlagents_envs import env_utils
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.exception import UnityTimeOutException
from mlagents_envs.rpc_communicator import RpcCommunicator
from mlagents_envs.side_channel import OutgoingMessage, SideChannel

from .errors import UnityBuildError
from .peer import SEED_CHANNEL


def check_build(file_name: str) -> str:
    """The program UnityEnvironment would launch for ``file_name`` (it also tries the .x86_64
    and .x86 extensions); raises UnityBuildError unless it is an executable file."""
    launch = env_utils.validate_environment_path(file_name)
    if launch is None and os.path.isfile(file_name):
        # mlagents-envs strips these from the whole path, then adds this OS's extensions.
        stripped = file_name.strip()
        for ext in (".app", ".exe", ".x86_64", ".x86"):
            stripped = stripped.replace(ext, "")
        foreign = {".exe": "a Windows build", ".app": "a macOS build"}.get(
            os.path.splitext(file_name)[1].lower())
        why = (f"it looks like {foreign}; this machine ({env_utils.get_platform()}) needs its "
               "own build" if foreign else "rename it or the folders above it")
        raise UnityBuildError(
            f"Unity build {file_name!r} exists but mlagents-envs cannot launch it: it strips "
            f"'.app', '.exe', '.x86_64' and '.x86' from the path and looks for {stripped!r} "
            f"with the extensions of this OS ({why})")
    if launch is None and not os.path.isdir(file_name):
        raise UnityBuildError(f"no Unity build at {file_name!r} (also tried the .x86_64 and "
                              ".x86 extensions)")
    path = launch or file_name
    if os.path.isdir(path):
        inside = sorted(glob.glob(os.path.join(glob.escape(path), "*.x86_64"))
                        + glob.glob(os.path.join(glob.escape(path), "*.x86")))
        example = inside[0] if inside else os.path.join(path, "Tennis.x86_64")
        raise UnityBuildError(f"Unity build {path!r} is a directory, not a program: pass the "
                              f"build's executable inside it, e.g. {example}")
    if not os.access(path, os.X_OK):
        raise UnityBuildError(f"Unity build {path!r} is not executable; run: chmod +x {path}")
    return path


def _launch_problem(path: str, exc: OSError) -> str:
    """Why the kernel refused to start ``path``, from the error and the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        head = b""
    if exc.errno == errno.ENOEXEC:
        if head.startswith(b"\x7fELF"):
            kind = "an ELF program for another CPU or OS"
        elif head.startswith(b"MZ"):
            kind = "a Windows program"
        elif head[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
            kind = "a macOS program"
        else:
            kind = "neither a program nor a script starting with #!"
        return (f"Unity build {path!r} is not a program this machine can run (Exec format "
                f"error: {kind}): is it a Unity build for another OS? A Linux build is the "
                ".x86_64 file next to its _Data folder")
    if exc.errno == errno.ENOENT and head.startswith(b"#!"):
        interpreter = (head[2:].split(b"\n", 1)[0].split() or [b""])[0]
        return (f"Unity build {path!r} could not be started: its #! line names "
                f"{interpreter.decode(errors='replace')!r}, which does not exist")
    name = errno.errorcode.get(exc.errno or 0, "?")
    return f"Unity build {path!r} could not be started: {exc.strerror} ({name})"


class SeedChannel(SideChannel):
    """Sends the seed of the next reset. The built-in peer honours it; a Unity build has no
    receiver for it and ignores it (its episodes are seeded once, at launch)."""

    def __init__(self) -> None:
        super().__init__(uuid.UUID(str(SEED_CHANNEL)))

    def on_message_received(self, msg) -> None:  # nothing comes back on this channel
        pass

    def send_seed(self, seed: int) -> None:
        msg = OutgoingMessage()
        msg.write_string(str(int(seed)))  # a string: seeds exceed the protocol's int32
        self.queue_message_to_send(msg)


class Communicator(RpcCommunicator):
    is_open: bool  # set by RpcCommunicator, which declares no types

    def create_server(self) -> None:
        try:
            super().create_server()
        except BaseException:
            # add_insecure_port binds the port before start(); a failure after it leaves a
            # server that holds the port until it is garbage collected.
            if self.server is not None:
                self.server.stop(None).wait(5.0)
            raise

    def poll_for_timeout(self, poll_callback=None) -> None:
        deadline = time.monotonic() + self.timeout_wait
        slice_s = min(1.0, max(0.05, self.timeout_wait / 10))
        while (left := deadline - time.monotonic()) > 0:
            if self.unity_to_external.parent_conn.poll(min(slice_s, left)):
                return
            if poll_callback:
                poll_callback()  # raises if the launched process has exited
        raise UnityTimeOutException(f"no message from Unity within {self.timeout_wait} s")

    def close(self) -> None:
        if not self.is_open:
            return
        from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

        goodbye = UnityMessageProto()
        goodbye.header.status = 400
        try:
            self.unity_to_external.parent_conn.send(goodbye)
        except OSError:
            pass  # the pipe is already gone; the server still has to stop
        self.unity_to_external.parent_conn.close()
        # A short grace lets a pending Exchange deliver the goodbye before the server stops.
        self.server.stop(0.5).wait(5.0)
        self.is_open = False


class Environment(UnityEnvironment):
    """UnityEnvironment whose failures and shutdowns leave no server or process behind."""

    close_grace_s = 5.0

    def __init__(self, file_name: str | None = None, **kwargs) -> None:
        """UnityEnvironment's arguments; raises UnityBuildError, before binding the port, for a
        build that is missing, a directory or not executable, and after closing the port for
        one that the kernel refuses to start."""
        launch = None
        if file_name is not None:
            file_name = os.fspath(file_name)
            launch = check_build(file_name)
        try:
            super().__init__(file_name=file_name, **kwargs)
        except BaseException as exc:
            self.shutdown(0)
            # Popen raises the exec failure with the program as filename; other OSErrors are
            # not about the build.
            if isinstance(exc, OSError) and launch is not None and exc.filename == launch:
                raise UnityBuildError(_launch_problem(launch, exc)) from exc
            raise

    @staticmethod
    def _get_communicator(worker_id, base_port, timeout_wait):
        return Communicator(worker_id, base_port, timeout_wait)

    def _close(self, timeout=None) -> None:
        if not hasattr(self, "_communicator"):
            return  # the port was taken: nothing was started
        process = self._process
        try:
            super()._close(self.close_grace_s if timeout is None else timeout)
        finally:
            if process is not None:
                if process.poll() is None:
                    process.kill()
                process.wait()

    def set_timeout(self, seconds: float) -> None:
        """How long later exchanges wait for Unity (the launch may need longer than a step)."""
        self._timeout_wait = seconds
        self._communicator.timeout_wait = seconds

    def shutdown(self, grace_s: float | None = None) -> None:
        """Close (a no-op when already closed) and forget the exit hook."""
        self._close(grace_s)
        atexit.unregister(self._close)
