"""The web console (issue 14): a page served by `lienthong up`, `demo` and
`replay` that shows the parties, the dossiers moving between them, counters,
throughput and latency live, a dossier's timeline, forms to submit a
declaration and switches to take an agency down.

`live.py` is the pure state the page reads (no I/O), `feed.py` fills it from
the gateway's Kafka topics, `app.py` is the Starlette application (its HTTP
API: cli/README.md, "The web console"), `server.py` runs it with uvicorn in a
thread of its own, `launch.py` wires it into the commands. Not `console`: in
cli/ that word is rich's Console.
"""
