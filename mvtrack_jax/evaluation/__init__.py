"""mvtrack_jax.evaluation."""
