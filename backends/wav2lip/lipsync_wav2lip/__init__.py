"""Wav2Lip backend for lipsync: generator, S3FD face detector, pipeline and worker."""

__version__ = "0.1.0"
