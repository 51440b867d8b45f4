"""A peer baseline: image records in SQLite as InvokeAI keeps them (a re-implementation for the bench).

Built to InvokeAI's own image-records design (its SQLite migrations and
``image_records_sqlite.py``): an ``images`` table with single-column indexes
on image_name, image_origin, image_category, created_at, starred and user_id;
``board_images`` (one board per image) with its two indexes; WAL; the gallery
page is its ``get_many`` query, a LEFT JOIN on board_images ordered by
``starred DESC, created_at DESC`` with LIMIT/OFFSET, plus the same WHERE's
``COUNT(*)``, each row turned into a dict (its ``deserialize_image_record``).
Nothing of InvokeAI is imported: this is the storage design, measured on the
same records as casvault's listing store.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_name TEXT NOT NULL PRIMARY KEY,
    image_origin TEXT NOT NULL,
    image_category TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    session_id TEXT,
    node_id TEXT,
    metadata TEXT,
    is_intermediate BOOLEAN DEFAULT FALSE,
    created_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')),
    updated_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')),
    deleted_at DATETIME,
    starred BOOLEAN DEFAULT FALSE,
    has_workflow BOOLEAN DEFAULT FALSE,
    user_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_images_image_name ON images(image_name);
CREATE INDEX IF NOT EXISTS idx_images_image_origin ON images(image_origin);
CREATE INDEX IF NOT EXISTS idx_images_image_category ON images(image_category);
CREATE INDEX IF NOT EXISTS idx_images_created_at ON images(created_at);
CREATE INDEX IF NOT EXISTS idx_images_starred ON images(starred);
CREATE INDEX IF NOT EXISTS idx_images_user_id ON images(user_id);
CREATE TABLE IF NOT EXISTS boards (
    board_id TEXT NOT NULL PRIMARY KEY,
    board_name TEXT NOT NULL,
    cover_image_name TEXT,
    created_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW'))
);
CREATE TABLE IF NOT EXISTS board_images (
    board_id TEXT NOT NULL,
    image_name TEXT NOT NULL,
    created_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')),
    updated_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')),
    deleted_at DATETIME,
    FOREIGN KEY (board_id) REFERENCES boards (board_id) ON DELETE CASCADE,
    FOREIGN KEY (image_name) REFERENCES images (image_name) ON DELETE CASCADE,
    PRIMARY KEY (image_name)
);
CREATE INDEX IF NOT EXISTS idx_board_images_board_id ON board_images (board_id);
CREATE INDEX IF NOT EXISTS idx_board_images_board_id_created_at ON board_images (board_id, created_at);
"""

WHERE = (
    "WHERE 1=1 AND images.user_id = ? AND images.image_category IN ('general') "
    "AND images.is_intermediate = FALSE AND board_images.board_id IS NULL"
)
PAGE_SQL = (
    "SELECT images.* FROM images LEFT JOIN board_images ON board_images.image_name = images.image_name "
    + WHERE + " ORDER BY images.starred DESC, images.created_at DESC LIMIT ? OFFSET ?"
)
COUNT_SQL = (
    "SELECT COUNT(*) FROM images LEFT JOIN board_images ON board_images.image_name = images.image_name " + WHERE
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection as InvokeAI opens its database (WAL, foreign keys on, rows as mappings)."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def build(path: Path, owner: str, records: list[dict]) -> None:
    """A database holding ``records`` (dicts with id, created_at, width, height, prompt, favorite) of ``owner``."""
    conn = connect(path)
    conn.executescript(SCHEMA)
    rnd = random.Random(7)
    conn.executemany(
        "INSERT INTO images (image_name, image_origin, image_category, width, height, session_id, node_id, metadata,"
        " is_intermediate, created_at, updated_at, starred, has_workflow, user_id)"
        " VALUES (?, 'internal', 'general', ?, ?, ?, ?, ?, FALSE, ?, ?, ?, TRUE, ?)",
        [
            (f"{r['id']}.png", r["width"], r["height"], rnd.randbytes(16).hex(), "save_image",
             json.dumps({"positive_prompt": r["prompt"], "seed": r["seed"]}),
             r["created_at"].replace("T", " ")[:23], r["created_at"].replace("T", " ")[:23],
             bool(r["favorite"]), owner)
            for r in records
        ],
    )
    conn.commit()
    conn.close()


def deserialize(row: sqlite3.Row) -> dict:
    """A row as InvokeAI's ImageRecord fields."""
    data = dict(row)
    return {
        "image_name": data["image_name"], "image_origin": data["image_origin"],
        "image_category": data["image_category"], "width": data["width"], "height": data["height"],
        "session_id": data["session_id"], "node_id": data["node_id"], "created_at": data["created_at"],
        "updated_at": data["updated_at"], "deleted_at": data["deleted_at"],
        "is_intermediate": bool(data["is_intermediate"]), "starred": bool(data["starred"]),
        "has_workflow": bool(data["has_workflow"]),
    }


def page(conn: sqlite3.Connection, owner: str, offset: int = 0, limit: int = 50) -> bytes:
    """One gallery page as JSON bytes: the page query and the count."""
    rows = conn.execute(PAGE_SQL, (owner, limit, offset)).fetchall()
    total = conn.execute(COUNT_SQL, (owner,)).fetchone()[0]
    return json.dumps({"items": [deserialize(r) for r in rows], "offset": offset, "limit": limit,
                       "total": total}).encode()


def cold_first_page(path: Path, owner: str) -> float:
    """Seconds a fresh connection takes to answer the first page (run in a fresh process)."""
    t = time.perf_counter()
    conn = connect(path)
    body = page(conn, owner)
    elapsed = time.perf_counter() - t
    assert len(json.loads(body)["items"]) == 50
    return elapsed


if __name__ == "__main__":
    print(json.dumps({"seconds": cold_first_page(Path(sys.argv[1]), sys.argv[2])}))
