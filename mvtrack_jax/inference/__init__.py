"""mvtrack_jax.inference: trained models for the entry points (generate, probe, evaluate, compare).

- ``novel_view``: :class:`NovelViewPipeline`, one trained model (from an export directory or a training
  workdir) with its autoencoder, text and image encoders and sampler: ``pipe(clip, sampling)`` samples a
  target-view video from a reference clip and a target camera trajectory (Euler + CFG), ``pipe.track``
  tracks query points with the head.
- ``clips``: the clips the entry points feed it (reference records from mp4 / npz / dataset, trajectories,
  ground-truth targets, query grids).
- ``visualize``: side-by-side videos and comparison strips with tracks drawn.
"""
