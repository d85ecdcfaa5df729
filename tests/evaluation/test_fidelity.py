"""Tests of PSNR / SSIM video fidelity."""

import numpy as np
import pytest
import skimage.data

from mvtrack_jax.evaluation import fidelity


def _video(num_frames=3, size=32):
  image = skimage.data.astronaut()[100:100 + size, 180:180 + size]
  return np.stack([np.roll(image, i, axis=1) for i in range(num_frames)])


def test_hand_computed_psnr_uint8_and_float():
  target = np.zeros((2, 16, 16, 3), np.uint8)
  generated = target.copy()
  generated[0] += 10   # MSE 100
  generated[1] += 20   # MSE 400
  expected = [10 * np.log10(255 ** 2 / 100), 10 * np.log10(255 ** 2 / 400)]  # 28.13 dB, 22.11 dB
  np.testing.assert_allclose(fidelity.psnr(generated, target), expected, rtol=1e-12)
  # The video PSNR pools the MSE over frames: (100 + 400) / 2 = 250, not the mean of the per-frame dB.
  np.testing.assert_allclose(fidelity.video_fidelity(generated, target)["psnr"], 10 * np.log10(255 ** 2 / 250),
                             rtol=1e-12)
  # One exact frame (per-frame PSNR +inf) leaves the video PSNR finite: MSE (0 + 400) / 2.
  generated[0] = target[0]
  assert fidelity.psnr(generated, target)[0] == np.inf
  np.testing.assert_allclose(fidelity.video_fidelity(generated, target)["psnr"], 10 * np.log10(255 ** 2 / 200),
                             rtol=1e-12)
  # Float video in [0, 1]: a uniform error of 0.1 is MSE 0.01, i.e. 20 dB.
  target_f = np.full((1, 16, 16, 1), 0.5)
  np.testing.assert_allclose(fidelity.psnr(target_f + 0.1, target_f), [20.0], rtol=1e-12)
  # [-1, 1] with an explicit range: the same error is 10·log10(4 / 0.01) dB.
  np.testing.assert_allclose(fidelity.psnr(target_f * 2 - 1 + 0.1, target_f * 2 - 1, data_range=2.0),
                             [10 * np.log10(400.0)], rtol=1e-12)


def test_identical_videos():
  video = _video()
  out = fidelity.video_fidelity(video, video)
  assert out["ssim"] == pytest.approx(1.0)
  assert out["psnr"] == np.inf
  np.testing.assert_allclose(fidelity.ssim(video, video, gaussian_weights=False), 1.0)
  np.testing.assert_allclose(fidelity.ssim(video[..., :1], video[..., :1]), 1.0)  # grey (T, H, W, 1)


def test_ssim_decreases_with_noise_and_is_per_frame():
  video = _video()
  rng = np.random.default_rng(0)
  noisy = video.astype(np.float64)
  noisy[1] += rng.normal(scale=5, size=noisy[1].shape)
  noisy[2] += rng.normal(scale=40, size=noisy[2].shape)
  noisy = np.clip(noisy, 0, 255).astype(np.uint8)
  values = fidelity.ssim(noisy, video)
  assert values.shape == (3,)
  assert values[0] == pytest.approx(1.0) and 1.0 > values[1] > values[2] > 0.0
  # Same number through float [0, 1] input.
  np.testing.assert_allclose(fidelity.ssim(noisy / 255.0, video / 255.0), values, rtol=1e-6)


def test_clear_errors():
  video = _video()
  with pytest.raises(ValueError, match="generated has shape .* but target"):
    fidelity.psnr(video[:, :16], video)
  with pytest.raises(ValueError, match="leading T = 1"):
    fidelity.psnr(video[0], video[0])
  with pytest.raises(ValueError, match="convert both"):
    fidelity.psnr(video, video / 255.0)
  with pytest.raises(ValueError, match=r"expected \[0, 1\]"):
    fidelity.psnr(video.astype(np.float32), video.astype(np.float32))
  with pytest.raises(ValueError, match="smaller than the 11x11"):
    fidelity.ssim(video[:, :8, :8], video[:, :8, :8])
