"""``lipsync serve``: an HTTP API and a web page in front of warm backend workers.

One process keeps a job store (SQLite under ``LIPSYNC_HOME``), a queue and warm `~lipsync_cli.render.Renderer`
workers per model, and serves the versioned REST API (`app`) and the page in ``web/``. `client` is the other
end, used by ``lipsync run --server`` and ``lipsync batch --server``.
"""
