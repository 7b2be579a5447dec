"""Clusters from a Slurm node list (sinfo): host lists, GRES, rules and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from eaco.errors import InputError
from eaco.model.slurm_nodes import expand_hostlist, load_sinfo_cluster, parse_gres_gpus, split_spec
from eaco.setup import build_cluster

SAMPLE = Path(__file__).parent / "data" / "sinfo_sample.txt"


def write(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "nodes.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_hostlists_expand() -> None:
    assert expand_hostlist("gpu01") == ["gpu01"]
    assert expand_hostlist("gpu[01-03,07],login1") == ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]
    assert expand_hostlist("n[8-10]") == ["n8", "n9", "n10"]
    assert expand_hostlist("r[1-2]n[1-2]") == ["r1n1", "r1n2", "r2n1", "r2n2"]
    for bad in ("gpu[01-03", "gpu01]", "gpu[a-b]", "gpu[5-3]", "a,,b"):
        with pytest.raises(ValueError):
            expand_hostlist(bad)


def test_gres_gpu_entries() -> None:
    assert parse_gres_gpus("gpu:a100:8(S:0-1)") == [("a100", 8)]
    assert parse_gres_gpus("gpu:8") == [(None, 8)]
    assert parse_gres_gpus("gpu:tesla_v100:4(S:0-1),shard:tesla_v100:16") == [("tesla_v100", 4)]
    assert parse_gres_gpus("gpu:a100:no_consume:2") == [("a100", 2)]
    assert parse_gres_gpus("gpu:a100:4,gpu:v100:2") == [("a100", 4), ("v100", 2)]
    assert parse_gres_gpus("(null)") == []
    assert parse_gres_gpus("mps:100") == []
    with pytest.raises(ValueError, match="GPU count"):
        parse_gres_gpus("gpu:a100:lots")


def test_spec_with_default_type() -> None:
    assert split_spec("nodes.txt") == ("nodes.txt", None)
    assert split_spec("nodes.txt:V100") == ("nodes.txt", "v100")
    assert split_spec("dir:x/nodes.txt") == ("dir:x/nodes.txt", None)


def test_sample_node_list() -> None:
    got = load_sinfo_cluster(SAMPLE)
    assert got.node_names == ("gpu01", "gpu02", "v100n01", "v100n02", "t4n01", "h100n01", "h100n02")
    assert [(n.gpu_type, n.num_gpus) for n in got.cluster.nodes] == [
        ("a100", 8), ("a100", 8), ("v100", 4), ("v100", 4), ("t4", 2), ("h100", 8), ("h100", 8)]
    assert got.without_gpus == 1  # cpu01, listed twice, counted once
    assert got.defaulted == ()
    assert got.cluster.num_gpus == 42
    assert got.cluster.describe() == "2x8xa100 + 2x4xv100 + 1x2xt4 + 2x8xh100"


def test_space_separated_without_header(tmp_path: Path) -> None:
    p = write(tmp_path, "node1   gpu:v100:8(S:0-1)", "node2   gpu:v100:8", "", "# a comment")
    got = load_sinfo_cluster(p)
    assert [(n.gpu_type, n.num_gpus) for n in got.cluster.nodes] == [("v100", 8), ("v100", 8)]


def test_header_columns_by_name(tmp_path: Path) -> None:
    p = write(tmp_path, "STATE|GRES|NODELIST", "idle|gpu:a100:4|a1", "mixed|gpu:a100:4|a2")
    assert load_sinfo_cluster(p).node_names == ("a1", "a2")


def test_untyped_gpus_need_a_default(tmp_path: Path) -> None:
    p = write(tmp_path, "NODELIST|GRES", "n1|gpu:a100:8", "n2|gpu:8", "n3|gpu:rtx_a6000:4")
    with pytest.raises(InputError) as err:
        load_sinfo_cluster(p)
    assert err.value.line == 3 and err.value.field == "GRES"
    assert "without a type" in str(err.value) and "sinfo:" in str(err.value)
    got = load_sinfo_cluster(p, "v100")
    assert [(n.gpu_type, n.num_gpus) for n in got.cluster.nodes] == [("a100", 8), ("v100", 8), ("v100", 4)]
    assert got.defaulted == ("n2", "n3")


def test_conflicts_and_bad_lines_are_errors(tmp_path: Path) -> None:
    cases = [
        (("NODELIST|GRES", "n1|gpu:a100:4,gpu:v100:4"), 2, "several types"),
        (("NODELIST|GRES", "n1|gpu:a100:4", "n1|gpu:a100:8"), 3, "line 2"),
        (("NODELIST|GRES", "n1|(null)", "n1|gpu:a100:8"), 3, "without"),
        (("NODELIST|GRES", "n[1-|gpu:a100:8"), 2, "unbalanced"),
        (("NODELIST|GRES", "n1"), 2, "node name and its GRES"),
        (("NODELIST|STATE", "n1|idle"), 1, "no GRES column"),
    ]
    for lines, line_no, message in cases:
        with pytest.raises(InputError) as err:
            load_sinfo_cluster(write(tmp_path, *lines))
        assert err.value.line == line_no and message in str(err.value), (lines, str(err.value))
    with pytest.raises(InputError, match="no node with GPUs"):
        load_sinfo_cluster(write(tmp_path, "NODELIST|GRES", "c1|(null)"))
    with pytest.raises(InputError, match="cannot read"):
        load_sinfo_cluster(tmp_path / "missing.txt")


def test_build_cluster_reads_sinfo_and_notes(tmp_path: Path) -> None:
    notes: list[str] = []
    spec = build_cluster(f"sinfo:{SAMPLE}", "generated", notes)
    assert spec.num_nodes == 7 and spec.name == "sinfo:sinfo_sample.txt"
    assert notes == ["1 node(s) without GPUs left out"]
    p = write(tmp_path, "NODELIST|GRES", "Big[1-2]|gpu:4")
    notes = []
    spec = build_cluster(f"sinfo:{p}:A100", "generated", notes)  # the path keeps its case
    assert [(n.gpu_type, n.num_gpus) for n in spec.nodes] == [("a100", 4), ("a100", 4)]
    assert notes == ["2 node(s) given the default GPU type a100 (untyped or unknown GPUs; first: Big1)"]


def test_simulate_a_sacct_export_on_a_sinfo_node_list(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eaco.cli import app

    sacct = Path(__file__).parent / "data" / "sacct_sample.txt"
    out = tmp_path / "out"
    # the sample node list has 8 V100s; the export has a job on 16
    small = CliRunner().invoke(app, ["simulate", "-w", f"slurm:{sacct}", "-c", f"sinfo:{SAMPLE}", "-o", str(out)])
    said = " ".join(small.output.split())  # the console wraps long lines
    assert small.exit_code == 2 and "can never run" in said and "16 x v100" in said
    nodes = write(tmp_path, "NODELIST|GRES", "a1|gpu:a100:8(S:0-1)", "v[1-2]|gpu:tesla_v100-sxm2-32gb:8", "login|(null)")
    result = CliRunner().invoke(app, [
        "simulate", "-w", f"slurm:{sacct}", "-c", f"sinfo:{nodes}", "-p", "fifo,eaco", "-o", str(out), "--no-plots",
    ])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "| cluster | 1x8xa100 + 2x8xv100 |" in report
    assert "| cluster source | sinfo:nodes.txt |" in report
    assert "| cluster notes | 1 node(s) without GPUs left out |" in report
    bad = CliRunner().invoke(app, ["simulate", "-n", "5", "-c", f"sinfo:{tmp_path / 'none.txt'}", "-o", str(out)])
    assert bad.exit_code == 2 and "none.txt: cannot read the node list" in " ".join(bad.output.split())
