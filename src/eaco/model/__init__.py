"""Typed core model shared by the simulator, the policies and the live runtime."""

from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.gpu import GPU_TYPES, GpuType, gpu_type
from eaco.model.job import Job

__all__ = ["ClusterSpec", "NodeSpec", "GPU_TYPES", "GpuType", "gpu_type", "Job"]
