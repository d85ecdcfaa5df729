"""mvtrack_jax.diffusion."""
