"""mlagents-envs imports through protobuf_compat; the unity package stays light and Dagster-free."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)


def test_mlagents_envs_needs_the_shim_and_imports_with_it():
    # Without the shim, protobuf >= 4 refuses the 0.28.0 generated modules.
    bare = run("import mlagents_envs.environment")
    assert bare.returncode != 0 and "Descriptors cannot be created directly" in bare.stderr

    code = """
import pkgutil, importlib, sys
import tennis_assets.unity
import mlagents_envs.communicator_objects as co
from mlagents_envs.environment import UnityEnvironment
for m in pkgutil.iter_modules(co.__path__):
    importlib.import_module(f"{co.__name__}.{m.name}")
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
from mlagents_envs.communicator_objects.command_pb2 import RESET
msg = UnityMessageProto()
msg.header.status = 200
msg.unity_input.rl_input.command = RESET
back = UnityMessageProto.FromString(msg.SerializeToString())
assert back.unity_input.rl_input.command == RESET == 1
print(len(list(pkgutil.iter_modules(co.__path__))))
"""
    out = run(code)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 20


def test_the_shim_refuses_to_come_second():
    out = run("import mlagents_envs.communicator_objects.header_pb2\n")
    assert out.returncode != 0  # the generated module itself fails, leaving nothing behind
    stale = "mlagents_envs.communicator_objects.header_pb2"
    out = run(f"import sys, types\nsys.modules['{stale}'] = types.ModuleType('x')\n"
              "import tennis_assets.unity\n")
    assert "import tennis_assets.unity before mlagents_envs" in out.stderr


def test_the_package_is_light_and_dagster_free():
    out = run("import sys, tennis_assets.unity\n"
              "print(sorted(m for m in ('dagster', 'grpc', 'mlagents_envs', 'torch') "
              "if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
