"""gunicorn settings for casvault (``gunicorn -c ops/gunicorn.conf.py 'web:create_app()'``).

Every value can be overridden from the environment: CASVAULT_BIND,
CASVAULT_WORKERS, CASVAULT_TIMEOUT.
"""

import multiprocessing
import os

bind = os.environ.get("CASVAULT_BIND", "127.0.0.1:8000")
# NOTE: each worker process keeps its own per-user index, kept current from
# the manifests, so any number of workers see each other's writes. Threaded
# workers keep a long streamed ZIP download from being killed by the worker
# timeout and from pinning a whole process; the store is thread-safe (per-user
# flocks are taken per thread, indexes are guarded by a mutex).
workers = int(os.environ.get("CASVAULT_WORKERS", 2 * multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("CASVAULT_THREADS", "4"))
timeout = int(os.environ.get("CASVAULT_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
accesslog = os.environ.get("CASVAULT_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("CASVAULT_LOG_LEVEL", "info")
# The app is built in each worker (preload would share one store's open
# files and threads across fork); the configuration is checked once in the
# master instead, by on_starting below.
preload_app = False


def on_starting(server) -> None:
    """Refuse to start, with one line and exit 1, on a bad configuration (e.g. no production secret)."""
    from casvault.config import Config
    from casvault.errors import ConfigError

    try:
        config = Config.from_env()
        if not config.dev:
            config.require_secret()
    except ConfigError as exc:
        # NOTE: gunicorn prints a RuntimeError raised here as one "Error:" line
        # and exits 1, before any worker starts (no traceback per worker).
        raise RuntimeError(f"casvault: {exc.message}") from None
