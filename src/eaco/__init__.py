"""EaCO: energy-aware co-location of deep-learning training jobs on shared GPU clusters.

Layout (one job per module):

- ``eaco.model``       typed core model: jobs, GPU types, nodes, clusters
- ``eaco.energy``      GPU and host power models, calibration against measurements
- ``eaco.colocation``  job-type catalogue and co-location ground truth (speed, utilisation)
- ``eaco.workloads``   trace loaders and the seeded workload generator
- ``eaco.state``       cluster occupancy shared by the simulator and the live runtime
- ``eaco.policies``    scheduling policies (one implementation, used by simulator and runtime)
- ``eaco.sim``         event-driven simulator engine, energy meter and metrics
- ``eaco.report``      tables and files written for people and machines
"""

__version__ = "0.1.0"
