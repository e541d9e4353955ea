"""mlagents-envs' UnityEnvironment with the few changes the adapter needs to fail cleanly.

Everything here is the real UnityEnvironment and RpcCommunicator; the subclasses only change
how they wait and how they shut down:

- RpcCommunicator waits for Unity in slices of ``timeout_wait // 10`` seconds, which is 0, a
  busy spin of a whole core, for any timeout under 10 s; here the slice is 50 ms to 1 s.
- Its ``close()`` stops the gRPC server without waiting, so the port can still be bound a moment
  later; here close returns once the server has stopped.
- UnityEnvironment only cleans up after a *timeout* during its handshake; a build that exits
  during the handshake left the server running and the process unreaped. Here every failure of
  the handshake closes both, and closing always reaps the process (killing it after a grace
  period), so no port or process outlives an error.

Import ``tennis_assets.unity`` (which installs protobuf_compat) before this module.
"""

from __future__ import annotations

import atexit
import time
import uuid

from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.exception import UnityEnvironmentException, UnityTimeOutException
from mlagents_envs.rpc_communicator import RpcCommunicator
from mlagents_envs.side_channel import OutgoingMessage, SideChannel

from .peer import SEED_CHANNEL


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

    @staticmethod
    def _get_communicator(worker_id, base_port, timeout_wait):
        return Communicator(worker_id, base_port, timeout_wait)

    def _send_academy_parameters(self, init_parameters):
        try:
            return super()._send_academy_parameters(init_parameters)
        except UnityEnvironmentException:
            self._close(0)  # the launched process exited during the handshake
            raise

    def _close(self, timeout=None) -> None:
        if not hasattr(self, "_communicator"):
            return  # the port was taken: nothing was started
        process = self._process
        super()._close(self.close_grace_s if timeout is None else timeout)
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
