"""Training loops (autoencoder; later the video diffusion model) and their shared machinery."""
