"""Many hosts: two processes on localhost (2 CPU devices each, gloo
collectives, loopback only) run one batch_lower over the 4 global devices.
The global result equals jax.vmap and each process holds the lanes of its
own devices. Bounded in time: the processes are killed after TIMEOUT s."""
import json
import os
import socket
import subprocess
import sys
import time

TIMEOUT = 60  # both processes, start-up included

WORKER = r"""
import json, sys
import numpy as np
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=40)
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import stablehlo_batch as sb

def f(x, w):
    return jnp.tanh(x @ w).sum(-1), x * 2

B = 8
xs = np.arange(B * 3 * 4, dtype=np.float32).reshape(B, 3, 4) / 50
w = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
mesh = Mesh(np.array(jax.devices()), ("batch",))
gx = jax.make_array_from_callback(xs.shape, NamedSharding(mesh, P("batch")), lambda i: xs[i])
bf = sb.batch_lower(f, in_axes=(0, None), mesh=mesh, axis_name="batch")
out = bf(gx, w)
want = jax.vmap(f, (0, None))(xs, w)
whole = [np.asarray(multihost_utils.process_allgather(o, tiled=True)) for o in out]
own = sorted({int(s.index[0].start or 0) for s in out[0].addressable_shards})
print(json.dumps(dict(
    pid=pid, n_devices=jax.device_count(), n_local=jax.local_device_count(),
    equal=all(bool(np.allclose(g, np.asarray(v), rtol=1e-5, atol=1e-6))
              for g, v in zip(whole, want)),
    local_equal=all(bool(np.allclose(np.asarray(s.data), np.asarray(v)[s.index],
                                     rtol=1e-5, atol=1e-6))
                    for o, v in zip(out, want) for s in o.addressable_shards),
    own_rows=own, own_devices=sorted(d.id for d in jax.local_devices()),
    mesh_devices=[d.id for d in mesh.devices.flat])), flush=True)
jax.distributed.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_four_devices(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(_free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               TF_CPP_MIN_LOG_LEVEL="2", NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost")
    procs = [subprocess.Popen([sys.executable, str(script), str(i), port], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    deadline = time.monotonic() + TIMEOUT
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, err.decode()[-3000:]
            outs.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    rows_per_device = 8 // 4
    for r in outs:
        assert r["n_devices"] == 4 and r["n_local"] == 2
        assert r["equal"] and r["local_equal"]
        # the lanes this process holds are those of its own devices in the mesh
        mine = [k for k, d in enumerate(r["mesh_devices"]) if d in r["own_devices"]]
        assert r["own_rows"] == [k * rows_per_device for k in mine]
    assert outs[0]["own_rows"] != outs[1]["own_rows"]
