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
# Fail fast in the master on a bad configuration (missing secret, bad root).
preload_app = False


def on_starting(server):
    """Master start: empty the workers' metric folder and point them at it (CASVAULT_METRICS=1)."""
    from casvault.config import Config
    from casvault.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(Config.from_env())


def child_exit(server, worker):
    """A worker ended: its metric files are folded into the archive (its counts stay in the sums)."""
    from casvault.metrics import MULTIPROC_ENV

    if MULTIPROC_ENV in os.environ:
        from web.metrics import archive_dead_worker

        try:
            archive_dead_worker(worker.pid)
        except Exception:  # NOTE: metrics must never take the master down
            server.log.exception("metrics: could not fold the files of worker %s", worker.pid)
