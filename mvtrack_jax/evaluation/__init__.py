"""Evaluation of novel-view generation and tracking (docs/evaluation.md; metric definitions in docs/design.md).

Metrics (the TAP-Vid ones are ``mvtrack_jax.tapvid``, a leaf the training objective logs with too):

- ``camera``: CamI2V RotErr / TransErr / CamMC (+ per-frame means) and pose estimation of a video
  from tracks, SIFT/ORB matches or Lucas–Kanade flow (essential matrix + recoverPose, triangulated scale).
- ``fidelity``: per-frame PSNR / SSIM against ground-truth target views (scikit-image).
- ``epipolar``: Sampson error of reference↔target correspondences under ground-truth cameras.
- ``learned``: registry hook for MEt3R / VBench / LPIPS implementations with user-provided weights.
- ``probe``: the attention-layer correspondence metrics of the layer probe.

Runs on ``inference.novel_view.NovelViewPipeline`` models:

- ``protocol_clips`` (the clips of the split, ``--videos`` and ``--dycheck`` protocols), ``clip_metrics``
  (per-clip metrics), ``baselines`` (model-free columns), ``report`` (summary and tables), ``runner`` (one scene
  loop for the three protocols, each protocol's scoring of a clip, and the output files);
- ``probe_run`` (the layer probe over a split) and ``comparison`` (the summary ``compare`` prints).
"""
