"""The history H of the EaCO paper: measured and observed co-locations, and the estimates
EaCO plans with (never the simulator's ground truth)."""

from eaco.predictor.history import CoLocationPredictor, SpeedEstimate, load_predictor

__all__ = ["CoLocationPredictor", "SpeedEstimate", "load_predictor"]
