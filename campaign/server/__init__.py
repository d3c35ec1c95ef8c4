"""The local Argilla server, split by where the code runs.

- `control/` runs in the CLI's process: it starts, stops and inspects redis-server, argilla-server and
  the rq worker (`campaign server start|stop|status`, `campaign demo`, the test suite).
- `plugin/` runs inside argilla-server's processes, started as `python -m campaign.server.plugin.launcher`:
  the SQLite search engine and its index, the project's own API endpoints and the speed-ups.

`control` imports nothing from `plugin`: it only names the launcher's module in the command lines it runs.
"""
