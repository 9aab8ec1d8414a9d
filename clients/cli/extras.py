"""The extras guard: a server-side command on an install without its extra stops with one line naming
the extra (exit 2) before anything heavy is imported, not with a traceback."""

from __future__ import annotations

from importlib.util import find_spec

# The top-level modules of each extra in pyproject.toml's [project.optional-dependencies]
# (tests/test_install.py keeps the two in step), and the extras each command imports.
EXTRA_MODULES = {
    "pipeline": ("tensorflow", "tensorflow_transform", "tfx_bsl", "apache_beam", "matplotlib", "tensorboard"),
    "serving": ("tensorflow", "tensorflow_serving", "grpc_health", "grpc_reflection", "prometheus_client",
                "aiohttp", "yaml", "PIL", "uvloop", "google_crc32c"),
}
COMMAND_EXTRAS = {
    "pipeline": ("pipeline",),
    "train": ("pipeline",),
    "model-server": ("serving",),
    "gateway": ("serving",),
    "demo": ("pipeline", "serving"),
    "logs": ("serving",),
    "drift": ("pipeline", "serving"),
}
# --help still works without the extra (model-server's TF Serving-style flags spell help four ways).
HELP_FLAGS = {"model-server": {"--help", "-help", "-h", "--helpfull"}}


def missing_extra(args: list[str]) -> str | None:
    """One line naming the extra the command in `args` needs, if one of its modules is not installed."""
    if not args or args[0] not in COMMAND_EXTRAS or HELP_FLAGS.get(args[0], {"--help"}).intersection(args[1:]):
        return None
    extras = COMMAND_EXTRAS[args[0]]
    missing = [m for m in dict.fromkeys(m for e in extras for m in EXTRA_MODULES[e]) if find_spec(m) is None]
    if not missing:
        return None
    shown = ", ".join(missing[:4]) + (", …" if len(missing) > 4 else "")
    names = " and ".join(extras)
    return (f"tfgate {args[0]} needs the {names} extra{'s' if len(extras) > 1 else ''} (not installed: {shown}): "
            f"pip install 'tfgate[{','.join(extras)}]'")
