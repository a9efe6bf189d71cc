"""lipsync: lip-synced talking-head videos from a portrait and a speech track."""

__version__ = "0.1.0"
