"""The `lienthong` command."""

import os

# Before gRPC starts: the CLI forks its stack's children while its own
# channels run, and gRPC's fork handlers then made a child abort between fork
# and exec ("epoll_wait error: Bad file descriptor"). The children exec at
# once and never use the parent's gRPC, so no handler is needed.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
