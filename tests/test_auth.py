"""web/auth.py: the signed guest cookie, which paths issue one."""

import pytest

from casvault import identity
from tests.conftest import SECRET, user


def test_cookie_issued_signed_and_forgery_replaced(app):
    c = app.test_client()
    r = c.get("/api/v1/images")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    uid = identity.verify(value, SECRET)
    assert uid and uid.startswith("anon-") and value.startswith(uid + ".")
    # the same client keeps its identity
    assert "Set-Cookie" not in c.get("/api/v1/images").headers
    forged = app.test_client()
    forged.set_cookie("anon_id", user(9) + ".forgedsignature")
    r = forged.get("/api/v1/images")
    new = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert identity.verify(new, SECRET) != user(9)


@pytest.mark.parametrize("path", ["/favicon.ico", "/static/icon.svg", "/s/not-a-token", "/outputs/users/x.png"])
def test_cacheable_paths_issue_no_identity(app, path):
    r = app.test_client().get(path)
    assert "Set-Cookie" not in r.headers, path


def test_pages_and_api_issue_identity(app):
    for path in ("/", "/api/v1/quota"):
        assert "anon_id=" in app.test_client().get(path).headers.get("Set-Cookie", ""), path
