"""mvtrack_jax.training."""
