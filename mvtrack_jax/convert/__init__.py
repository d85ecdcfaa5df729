"""mvtrack_jax.convert."""
