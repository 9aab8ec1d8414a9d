"""tfgate's TF-Serving-compatible model server (`tfgate model-server`).

Speaks TF Serving's gRPC and REST APIs using the message classes and stubs of the
`tensorflow-serving-api` package, and takes `tensorflow_model_server`'s flags.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Runs the model server on tensorflow_model_server's flags (default: sys.argv[1:]) until SIGTERM
    or SIGINT; returns the process exit code. The gateway package has the same entry point."""
    from .server import main as run

    return run(sys.argv[1:] if argv is None else list(argv))
