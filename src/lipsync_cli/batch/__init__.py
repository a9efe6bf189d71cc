"""``lipsync batch``: many renders from one manifest, with warm workers, resume, shards and Ray."""
