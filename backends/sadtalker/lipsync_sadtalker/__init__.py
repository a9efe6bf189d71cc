"""SadTalker backend for lipsync: 3DMM coefficients from audio, face renderer, pipeline and worker."""

__version__ = "0.1.0"
