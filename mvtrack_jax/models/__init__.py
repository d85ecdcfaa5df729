"""mvtrack_jax.models."""
