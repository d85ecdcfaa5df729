"""mvtrack_jax.losses: L_diff, L_track, L_corr and the MVTrack4Gen objective."""

from mvtrack_jax.losses.correspondence import (
    CorrespondenceConfig,
    attention_correspondence_loss,
    correspondence_targets,
    multi_layer_correspondence_loss,
)
from mvtrack_jax.losses.diffusion import flow_matching_loss
from mvtrack_jax.losses.objective import ObjectiveConfig, make_objective, validate_batch
from mvtrack_jax.losses.tracking import TrackingLossConfig, tracking_loss

__all__ = [
    "CorrespondenceConfig",
    "ObjectiveConfig",
    "TrackingLossConfig",
    "attention_correspondence_loss",
    "correspondence_targets",
    "flow_matching_loss",
    "make_objective",
    "multi_layer_correspondence_loss",
    "tracking_loss",
    "validate_batch",
]
