"""``check_runnable``: a job's GPUs must fit on one node, so it is compared with the largest node."""

from __future__ import annotations

import pytest

from eaco.errors import InputError
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.jobs import check_runnable, largest_node_gpus
from eaco.runtime.ray_backend import RayInventory, RayNode
from eaco.runtime.spec import spec_from_yaml


def spec(num_gpus: int):  # type: ignore[no-untyped-def]
    return spec_from_yaml(f"name: j\ncommand: python train.py\nepochs: 1\njob_type: resnet18\nnum_gpus: {num_gpus}\n", "j.yaml")


def ray_inventory(*per_node: int) -> RayInventory:
    nodes = tuple(RayNode(f"n{i}", n) for i, n in enumerate(per_node))
    return RayInventory("v100", tuple(range(sum(per_node))), True, nodes)


def test_local_inventory_is_one_node(env) -> None:  # type: ignore[no-untyped-def]
    inventory = declared_gpus("2xv100")
    assert largest_node_gpus(inventory) == 2
    check_runnable(spec(2), env.catalog, inventory, "j.yaml")
    with pytest.raises(InputError) as err:
        check_runnable(spec(3), env.catalog, inventory, "j.yaml")
    assert err.value.field == "num_gpus" and "largest node has 2 GPUs" in str(err.value)


def test_ray_nodes_are_not_added_up(env) -> None:  # type: ignore[no-untyped-def]
    inventory = ray_inventory(2, 3, 1)  # 6 GPUs in all, at most 3 on a node
    assert largest_node_gpus(inventory) == 3
    check_runnable(spec(3), env.catalog, inventory, "j.yaml")
    for too_many in (4, 6):
        with pytest.raises(InputError) as err:
            check_runnable(spec(too_many), env.catalog, inventory, "j.yaml")
        assert err.value.field == "num_gpus", str(err.value)
        assert f"asks for {too_many} GPUs on one node; the largest node has 3 GPUs" in str(err.value)
        assert str(err.value).startswith("j.yaml: field 'num_gpus'")
