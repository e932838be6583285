"""The three RADiff models: autoencoder, conditional latent U-Net (+ background encoder), mask prior."""
