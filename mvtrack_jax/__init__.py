"""mvtrack_jax: camera-controlled novel-view video diffusion with multi-view tracking supervision.

Packages (dependencies point one way: geometry <- data; models <- losses <- training <- entry
points):

- ``geometry``: camera conventions, relative poses, projection, Plücker rays, preset trajectories.
- ``data``: record schema, synthetic renderer, TFDS builder, readers, grain pipeline, preview.
- ``models``: Wan2.1 DiT, attention backends, camera encoders, tracking head.
- ``diffusion``: flow-matching schedule, noising and sampling.
- ``losses``: diffusion, tracking and attention-correspondence losses.
- ``training``, ``evaluation``, ``convert``: trainer, metrics, weight import/export.

See ``README.md`` (the front door) and ``docs/`` (design notes, data, model, training, evaluation, performance).
"""

__version__ = "0.1.0"
