"""Cluster occupancy shared by the simulator and the live runtime."""

from eaco.state.cluster_state import ClusterState

__all__ = ["ClusterState"]
