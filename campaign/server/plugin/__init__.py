"""What argilla-server imports: everything here runs inside the local server's processes.

- `launcher`: the entry point of every argilla-server process (prepare, serve, worker, reindex).
- `app`: the ASGI app uvicorn serves, argilla-server's app with the plugin installed.
- `search_engine`: argilla-server's SearchEngine backed by `search_index`, the SQLite + FTS5 index.
- `sync_endpoints`, `bulk_create`: the API endpoints the local server adds under /api/v1/campaign/.
- `fixes`, `annotator_search`: in-memory fixes of argilla-server 2.8.0 for many annotators at once
  (reads never write; SQLite write transactions queue instead of failing).
- `speedups`: targeted in-memory speed-ups of argilla-server 2.8.0.
"""
