"""mvtrack_jax.inference: trained models for the entry points (generate, probe, evaluate).

- ``checkpoint``: :func:`load_model` reads an export directory (``mvtrack_jax.export``) or a
  training workdir and rebuilds the DiT, tracking head and autoencoder of its config.
- ``novel_view``: :class:`NovelViewGenerator` samples a target-view video from a reference clip and
  a target camera trajectory (Euler + CFG) and tracks query points with the head.
"""
