"""Process control of the local server, run by the CLI: start, stop, status (`local_server.LocalServer`)."""
