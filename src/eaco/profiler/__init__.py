"""The profiler: real PyTorch training jobs alone and co-located, GPU energy through NVML, profiles out.

Modules (one job each; only ``train``, ``zoo``, ``data`` and ``provenance`` import torch):

- :mod:`~eaco.profiler.epoch_report`: per-epoch JSON-lines reports from any training loop (no torch).
- :mod:`~eaco.profiler.zoo`, :mod:`~eaco.profiler.data`: models in plain PyTorch, synthetic data.
- :mod:`~eaco.profiler.train`: one job as a process (``python -m eaco.profiler.train``), checkpoint/resume.
- :mod:`~eaco.profiler.telemetry`: NVML + psutil sampling in a background thread.
- :mod:`~eaco.profiler.summary`: samples -> energy, power, utilisation, memory of a run.
- :mod:`~eaco.profiler.experiment`: launch jobs alone / together as processes and collect everything.
- :mod:`~eaco.profiler.store`: runs -> profile-store rows (:mod:`eaco.colocation.profiles`).
- :mod:`~eaco.profiler.report`: Tables 1-4, CSVs in the paper's layout, utilisation figure.
- :mod:`~eaco.profiler.pipeline`, :mod:`~eaco.profiler.cli`: the ``eaco profile`` command.

See docs/profiler.md.
"""
