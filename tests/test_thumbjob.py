"""casvault.thumbjob: thumbnails regenerated where the record is now."""

import pytest

from casvault.config import Config
from casvault.store import Store
from tests.conftest import make_png, user

A = user(1)


@pytest.fixture
def fstore(config: Config) -> Store:
    """A store without fsync (fast)."""
    return Store(config.with_(fsync=False))


def test_thumbnail_goes_where_the_record_is_now(fstore):
    from casvault import thumbjob

    rec = fstore.ingest(make_png(seed=1), A).record
    fstore.layout.thumb_path(rec).unlink()
    fstore.trash(A, rec.id)
    report = thumbjob.regenerate(fstore, jobs=1)
    assert report.made == 1
    assert fstore.layout.thumb_path(rec, trashed=True).is_file()
    assert not fstore.layout.thumb_path(rec, trashed=False).exists()
