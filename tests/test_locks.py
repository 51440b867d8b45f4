"""casvault.locks: the users' and jobs' locks."""

from tests.conftest import user

A = user(1)


def test_user_lock_is_reentrant_in_a_thread(store):
    with store.locks.user(A):
        with store.locks.user(A):
            assert store.locks.holds_user(A)
        assert store.locks.holds_user(A)
    assert not store.locks.holds_user(A)
