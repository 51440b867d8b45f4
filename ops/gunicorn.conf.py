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
# NOTE: casvault logs one line per request itself (web/requestlog.py, health
# checks at debug only); gunicorn's access log is off unless CASVAULT_ACCESS_LOG names a file or "-".
accesslog = os.environ.get("CASVAULT_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("CASVAULT_LOG_LEVEL", "info")
# The app is built in each worker (preload would share one store's open
# files and threads across fork); the configuration is checked once in the
# master instead, by on_starting below.
preload_app = False


def on_starting(server) -> None:
    """Refuse to start, with one line and exit 1, on a bad configuration (e.g. no production secret).

    Then (CASVAULT_METRICS=1) empty the workers' metric folder and point them at it.
    """
    from casvault.config import Config
    from casvault.errors import ConfigError
    from casvault.metrics import prepare_multiprocess_dir

    try:
        config = Config.from_env()
        if not config.dev:
            config.require_secret()
    except ConfigError as exc:
        # NOTE: gunicorn prints a RuntimeError raised here as one "Error:" line
        # and exits 1, before any worker starts (no traceback per worker).
        raise RuntimeError(f"casvault: {exc.message}") from None
    prepare_multiprocess_dir(config)


def child_exit(server, worker) -> None:
    """A worker ended: its metric files are folded into the archive (its counts stay in the sums)."""
    from casvault.metrics import MULTIPROC_ENV

    if MULTIPROC_ENV in os.environ:
        from web.metrics import archive_dead_worker

        try:
            archive_dead_worker(worker.pid)
        except Exception:  # NOTE: metrics must never take the master down
            server.log.exception("metrics: could not fold the files of worker %s", worker.pid)
