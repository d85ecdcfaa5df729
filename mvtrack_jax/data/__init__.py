"""mvtrack_jax.data."""
