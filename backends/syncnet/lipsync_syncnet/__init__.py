"""SyncNet lip-sync scores (Chung & Zisserman, "Out of time", ACCV 2016 workshops) as a lipsync backend."""

__version__ = "0.1.0"
