"""mvtrack_jax.losses."""
