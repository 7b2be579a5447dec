"""``check_runnable``: on one machine a job's GPUs must fit on one node, so it is compared with
the largest node; on Ray a job may span nodes, so with every GPU of the type it asks for (one
type per job); its memory must fit a GPU it can run on."""

from __future__ import annotations

import pytest

from eaco.errors import InputError
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.jobs import check_runnable
from eaco.runtime.ray_inventory import RayInventory, RayNode
from eaco.runtime.spec import spec_from_yaml


def spec(num_gpus: int, extra: str = ""):  # type: ignore[no-untyped-def]
    return spec_from_yaml(f"name: j\ncommand: python train.py\nepochs: 1\njob_type: resnet18\nnum_gpus: {num_gpus}\n{extra}", "j.yaml")


def ray_inventory(*per_node: int, types: tuple[str, ...] = ()) -> RayInventory:
    nodes = tuple(RayNode(f"n{i}", n, types[i] if types else "v100") for i, n in enumerate(per_node))
    return RayInventory(nodes[0].gpu_type, tuple(range(sum(per_node))), True, nodes)


def test_local_inventory_is_one_node(env) -> None:  # type: ignore[no-untyped-def]
    inventory = declared_gpus("2xv100")
    assert inventory.largest_node_gpus() == 2
    check_runnable(spec(2), env.catalog, inventory, "j.yaml")
    with pytest.raises(InputError) as err:
        check_runnable(spec(3), env.catalog, inventory, "j.yaml")
    assert err.value.field == "num_gpus" and "largest node has 2 GPUs" in str(err.value)


def test_ray_nodes_add_up_for_a_job_that_spans_them(env) -> None:  # type: ignore[no-untyped-def]
    inventory = ray_inventory(2, 3, 1)  # 6 GPUs in all, at most 3 on a node
    assert inventory.largest_node_gpus() == 3 and inventory.most_gpus_per_job() == 6
    for fits in (3, 4, 6):
        check_runnable(spec(fits), env.catalog, inventory, "j.yaml")
    with pytest.raises(InputError) as err:
        check_runnable(spec(7), env.catalog, inventory, "j.yaml")
    assert err.value.field == "num_gpus", str(err.value)
    assert "asks for 7 GPUs; the cluster has at most 6 GPUs of one type" in str(err.value)
    assert str(err.value).startswith("j.yaml: field 'num_gpus'")


def test_mixed_ray_nodes_checked_per_gpu_type(env) -> None:  # type: ignore[no-untyped-def]
    inventory = ray_inventory(4, 2, types=("k80", "a100"))  # 4 K80s (12 GB) on one node, 2 A100s (80 GB) on another
    assert inventory.gpu_types() == ("k80", "a100") and inventory.describe() == "ray 2 nodes 4xk80+2xa100 (declared)"
    assert check_runnable(spec(1), env.catalog, inventory, "j.yaml") == ("k80", "a100")
    assert check_runnable(spec(4), env.catalog, inventory, "j.yaml") == ("k80",)
    assert check_runnable(spec(1, "memory_gb: 40\n"), env.catalog, inventory, "j.yaml") == ("a100",)
    with pytest.raises(InputError) as err:
        check_runnable(spec(3, "gpu_type: a100\n"), env.catalog, inventory, "j.yaml")
    assert err.value.field == "num_gpus" and "the cluster has at most 2 GPUs of a100" in str(err.value)
    with pytest.raises(InputError) as err:
        check_runnable(spec(5), env.catalog, inventory, "j.yaml")  # no type has 5 GPUs (one type per job)
    assert err.value.field == "num_gpus" and "at most 4 GPUs of one type" in str(err.value)
    with pytest.raises(InputError) as err:
        check_runnable(spec(4, "memory_gb: 40\n"), env.catalog, inventory, "j.yaml")  # only the K80s are 4
    assert err.value.field == "memory_gb" and "40 GB does not fit a GPU it could run on (k80 12 GB)" in str(err.value)
    with pytest.raises(InputError) as err:
        check_runnable(spec(1, "gpu_type: h100\n"), env.catalog, inventory, "j.yaml")
    assert err.value.field == "gpu_type"


def _ray_node(name: str, gpus: int, marker: str | None = None) -> dict[str, object]:
    from eaco.runtime.ray_inventory import TYPE_PREFIX, node_resources

    resources: dict[str, float] = dict(node_resources(name, gpus))
    if marker is not None:
        resources[TYPE_PREFIX + marker] = 1.0
    return {"Alive": True, "NodeID": f"id-{name}", "Resources": resources}


def test_discovery_takes_nodes_of_every_known_gpu_type() -> None:
    from eaco.runtime.ray_inventory import discover

    nodes = [_ray_node("a", 2), _ray_node("b", 4, "a100"), _ray_node("c", 1, "tpu9")]
    refused: dict[str, str] = {}
    inv = discover("v100", ray_nodes=nodes, refused=refused)
    assert [(n.name, n.num_gpus, n.gpu_type) for n in inv.nodes] == [("a", 2, "v100"), ("b", 4, "a100")]
    assert refused == {"c": "tpu9"} and inv.gpu_type == "v100" and inv.gpu_types() == ("v100", "a100")
    assert inv.cluster().gpu_types == ("a100", "v100") and inv.largest_node_gpus("a100") == 4
    with pytest.raises(InputError, match="node c: unknown GPU type 'tpu9'"):
        discover("v100", ray_nodes=nodes)  # without refused: an error
    # a restarted daemon keeps its numbering and each node's type; old files list no type
    again = discover("v100", known=[("b", 4, "a100"), ("a", 2)], ray_nodes=nodes[:2])
    assert [(n.name, n.gpu_type) for n in again.nodes] == [("b", "a100"), ("a", "v100")] and again.gpu_type == "a100"
    with pytest.raises(InputError, match="node b had v100 GPUs and has a100 now"):
        discover("v100", known=[("b", 4, "v100")], ray_nodes=nodes[:2])
