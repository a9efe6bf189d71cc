"""MuseTalk 1.5 backend: single-step latent mouth inpainting (TMElyralab/MuseTalk)."""

__version__ = "0.1.0"
