"""What every attempt is told about the processes of its job: how many nodes it runs on, which one
this is, how many GPUs it has here, and where its processes meet (docs/runtime_ray.md, "Jobs on
several nodes").

The names are EaCO's (``EACO_*``), ``torch.distributed``'s (``MASTER_ADDR``, ``MASTER_PORT``) and
``torchrun``'s defaults for its options (``PET_*``), so that a plain ``torchrun train.py`` starts
one process per GPU of the attempt on every node, and the processes of one job find each other
while other jobs on the same machine meet elsewhere (each attempt gets a port of its own; a
job's spec ``env`` still wins over all of these).
"""

from __future__ import annotations

import socket
from typing import Mapping

NUM_NODES_ENV = "EACO_NUM_NODES"  # how many nodes (process groups) the job runs on
NODE_RANK_ENV = "EACO_NODE_RANK"  # which of them this is (0 .. EACO_NUM_NODES-1)
LOCAL_GPUS_ENV = "EACO_LOCAL_GPUS"  # how many GPUs it has on this node
MASTER_ADDR_ENV = "EACO_MASTER_ADDR"  # where its processes meet (rank 0's node)
MASTER_PORT_ENV = "EACO_MASTER_PORT"
LOOPBACK = "127.0.0.1"  # the meeting point of a job on one node


def free_port() -> int:
    """A TCP port free on this host now (the OS's choice; the job binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def job_process_env(rank: int, ranks: int, local_gpus: int, master_addr: str, master_port: int) -> dict[str, str]:
    """The variables for node ``rank`` of ``ranks`` with ``local_gpus`` GPUs there."""
    return {
        NUM_NODES_ENV: str(ranks), NODE_RANK_ENV: str(rank), LOCAL_GPUS_ENV: str(local_gpus),
        MASTER_ADDR_ENV: master_addr, MASTER_PORT_ENV: str(master_port),
        "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
        "PET_NNODES": str(ranks), "PET_NODE_RANK": str(rank), "PET_NPROC_PER_NODE": str(local_gpus),
        "PET_MASTER_ADDR": master_addr, "PET_MASTER_PORT": str(master_port),
    }


def add_job_process_env(env: dict[str, str], spec_env: Mapping[str, str], values: Mapping[str, str]) -> None:
    """Put ``values`` into the process environment ``env``, except names the job's spec sets."""
    for name, value in values.items():
        if name not in spec_env:
            env[name] = value
