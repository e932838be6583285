"""Evaluation: FID on domain features, SSIM, segmentation score, augmentation study."""
