"""casvault.quota: limits on count and bytes, trash included, checked at ingest."""

import pytest

from casvault.errors import QuotaExceeded
from casvault.store import Store
from tests.conftest import make_png, user

A = user(1)


def test_quota_count_and_bytes_trash_counts(config):
    store = Store(config.with_(quota_max_count=2))
    r1 = store.ingest(make_png(seed=1), A).record
    store.ingest(make_png(seed=2), A)
    store.trash(A, r1.id)
    with pytest.raises(QuotaExceeded) as err:
        store.ingest(make_png(seed=3), A)
    assert err.value.details["usage"]["trash_count"] == 1
    store.purge(A, r1.id)
    store.ingest(make_png(seed=3), A)
    data = make_png(seed=9)
    small = Store(config.with_(root=config.root.parent / "r2", quota_max_bytes=len(data) + 10))
    small.ingest(data, A)
    with pytest.raises(QuotaExceeded):
        small.ingest(make_png(seed=10), A)
