"""The backend kit shared by every lipsync backend environment."""

__version__ = "0.1.0"
