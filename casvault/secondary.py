"""Secondary indexes of one user's records: facet posting lists and a word index.

Every record the index holds gets a *slot*, a small integer; a posting list
is the sorted array of the slots that carry a value (a tag, an aspect ratio,
a model...) or a word. A bulk build numbers the records in
``(created_at, id)`` order, so a posting list is also in time order and a
page is read from its end; an incremental add takes the next slot, which
keeps that order as long as records arrive newest last (when one does not,
``ordered`` turns False and queries sort their candidates).

Words come from the prompt, the negative prompt, the model, the LoRA names,
the sampler, the seed and the original file name, split on anything that is
not a letter or a digit and lower-cased. A query word matches every word it
is a prefix of and, when it has 4 characters or more and is not a number,
every word within one typo (one letter inserted, deleted, replaced, or two
neighbours swapped): candidates come from a deletion neighbourhood and are
verified by that edit distance.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, insort
from itertools import compress
from typing import Any, Iterable, Sequence

from .records import KINDS, Record

# The fields a listing can filter on by exact value and the facets endpoint counts.
FACETS = ("model", "lora", "sampler", "workflow_id", "aspect_ratio", "tag")
FAVORITE = "favorite"
MIN_TYPO_LEN = 4
_WORD_RE = re.compile(r"[^\W_]+")
_MIN_TYPO_TERM = MIN_TYPO_LEN - 1  # a query word of 4 with one letter too many matches a word of 3


def words_of(text: str) -> list[str]:
    """The search words of a text: runs of letters and digits, lower-cased."""
    return _WORD_RE.findall(text.lower())


def _source_names(record: Record) -> tuple[str | None, tuple[str, ...], str | None]:
    """Model, LoRA names and sampler from a record's ``source`` (anything malformed is skipped)."""
    source = record.source
    if not isinstance(source, dict):
        return None, (), None
    model = source.get("model")
    sampler = source.get("sampler")
    loras = source.get("loras")
    names: tuple[str, ...] = ()
    if isinstance(loras, list):
        names = tuple(dict.fromkeys(
            lora["name"] for lora in loras if isinstance(lora, dict) and isinstance(lora.get("name"), str)
        ))
    return (model if isinstance(model, str) else None), names, (sampler if isinstance(sampler, str) else None)


def facet_values(record: Record) -> dict[str, tuple[str, ...]]:
    """The values of a record under each facet field (and ``favorite``)."""
    model, loras, sampler = _source_names(record)
    aspect = getattr(record, "aspect_ratio", None)
    workflow = getattr(record, "workflow_id", None)
    return {
        "model": (model,) if model else (),
        "lora": loras,
        "sampler": (sampler,) if sampler else (),
        "workflow_id": (workflow,) if workflow else (),
        "aspect_ratio": (aspect,) if aspect else (),
        "tag": tuple(dict.fromkeys(record.tags)),
        FAVORITE: ("1",) if record.favorite else (),
    }


def _text_of(record: Record) -> str:
    model, loras, sampler = _source_names(record)
    seed = getattr(record, "seed", None)
    parts = (
        getattr(record, "prompt", None), getattr(record, "negative_prompt", None), model, *loras, sampler,
        None if seed is None else str(seed), record.original_filename,
    )
    return " ".join(p for p in parts if p)


def record_words(record: Record) -> set[str]:
    """The distinct search words of a record."""
    return set(_WORD_RE.findall(_text_of(record).lower()))


def deletions(word: str) -> set[str]:
    """Every string one character shorter than ``word`` that it contains in order."""
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one insertion, deletion, substitution or swap of neighbours."""
    if a == b:
        return True
    if len(a) > len(b):
        a, b = b, a
    la, lb = len(a), len(b)
    if lb - la > 1:
        return False
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    if la < lb:
        return a[i:] == b[i + 1:]
    if a[i + 1:] == b[i + 1:]:
        return True
    return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]


def _typo_eligible(word: str) -> bool:
    return len(word) >= _MIN_TYPO_TERM and not word.isdigit()


def state_code(kind: str, status: str) -> int:
    """A record's kind and status as one byte (0 is a free slot)."""
    return KINDS.index(kind) * 2 + (2 if status == "trash" else 1)


def codes_for(kind: str, include: str) -> frozenset[int]:
    """The state codes a listing of ``kind`` with ``include`` (active, trash, all) accepts."""
    if include == "all":
        return frozenset((state_code(kind, "active"), state_code(kind, "trash")))
    return frozenset((state_code(kind, include),))


class Postings:
    """Value → sorted slots; a value held by one slot keeps a bare int (most seeds and file numbers)."""

    __slots__ = ("lists",)

    def __init__(self, lists: dict[str, Any] | None = None) -> None:
        self.lists: dict[str, Any] = lists if lists is not None else {}

    @classmethod
    def from_lists(cls, lists: dict[str, list[int]]) -> "Postings":
        """Postings from ascending Python lists (a bulk build)."""
        return cls({v: s[0] if len(s) == 1 else array("I", s) for v, s in lists.items()})

    def get(self, value: str) -> Sequence[int]:
        """The ascending slots holding ``value`` (empty when none)."""
        slots = self.lists.get(value)
        if slots is None:
            return ()
        return (slots,) if type(slots) is int else slots

    def add(self, value: str, slot: int) -> bool:
        """Add ``slot`` under ``value``; True when the value is new."""
        slots = self.lists.get(value)
        if slots is None:
            self.lists[value] = slot
            return True
        if type(slots) is int:
            if slots != slot:
                self.lists[value] = array("I", sorted((slots, slot)))
            return False
        if not slots or slots[-1] < slot:
            slots.append(slot)
        else:
            i = bisect_left(slots, slot)
            if i == len(slots) or slots[i] != slot:
                slots.insert(i, slot)
        return False

    def remove(self, value: str, slot: int) -> bool:
        """Take ``slot`` from under ``value``; True when the value is gone."""
        slots = self.lists.get(value)
        if slots is None:
            return False
        if type(slots) is int:
            if slots == slot:
                del self.lists[value]
                return True
            return False
        i = bisect_left(slots, slot)
        if i < len(slots) and slots[i] == slot:
            del slots[i]
        if len(slots) == 1:
            self.lists[value] = slots[0]
        elif not slots:
            del self.lists[value]
            return True
        return False


class SecondaryIndex:
    """Posting lists, a word index and facet counts over one user's records."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str] | None] = []  # slot → (created_at, id); None once freed
        self.state = bytearray()  # slot → state_code, 0 when freed
        self.slot_of: dict[str, int] = {}
        self.ordered = True
        self.newest: tuple[str, str] | None = None
        self.facets: dict[str, Postings] = {name: Postings() for name in (*FACETS, FAVORITE)}
        self.words = Postings()
        self.vocab: list[str] = []  # the words, sorted (prefix lookups)
        self.near: dict[str, Any] = {}  # deletion → word or tuple of words (typo lookups)
        # state code → facet → value → number of records
        self.counts: dict[int, dict[str, dict[str, int]]] = {}

    # --- building -------------------------------------------------------------

    @classmethod
    def build(cls, records: Iterable[Record]) -> "SecondaryIndex":
        """Index ``records`` in one pass, slots in (created_at, id) order."""
        index = cls()
        ordered = sorted(records, key=lambda r: (r.created_at, r.id))
        facet_lists: dict[str, dict[str, list[int]]] = {name: {} for name in index.facets}
        word_lists: dict[str, list[int]] = {}
        keys, state, slot_of = index.keys, index.state, index.slot_of
        for slot, record in enumerate(ordered):
            keys.append((record.created_at, record.id))
            code = state_code(record.kind, record.status)
            state.append(code)
            slot_of[record.id] = slot
            values = facet_values(record)
            index._count(code, values, +1)
            for name, vals in values.items():
                lists = facet_lists[name]
                for value in vals:
                    found = lists.get(value)
                    if found is None:
                        lists[value] = [slot]
                    else:
                        found.append(slot)
            for word in _WORD_RE.findall(_text_of(record).lower()):
                found = word_lists.get(word)
                if found is None:
                    word_lists[word] = [slot]
                elif found[-1] != slot:
                    found.append(slot)
        index.newest = keys[-1] if keys else None
        index.facets = {name: Postings.from_lists(lists) for name, lists in facet_lists.items()}
        index.words = Postings.from_lists(word_lists)
        index.vocab = sorted(word_lists)
        for word in index.vocab:
            if _typo_eligible(word):
                index._near_add(word)
        return index

    def _near_add(self, word: str) -> None:
        near = self.near
        for d in deletions(word):
            have = near.get(d)
            if have is None:
                near[d] = word
            elif type(have) is str:
                near[d] = (have, word)
            else:
                near[d] = (*have, word)

    def _near_remove(self, word: str) -> None:
        near = self.near
        for d in deletions(word):
            have = near.get(d)
            if have == word:
                del near[d]
            elif type(have) is tuple:
                rest = tuple(w for w in have if w != word)
                near[d] = rest[0] if len(rest) == 1 else rest

    def _count(self, code: int, values: dict[str, tuple[str, ...]], sign: int) -> None:
        by_field = self.counts.get(code)
        if by_field is None:
            by_field = self.counts[code] = {name: {} for name in FACETS}
        for name in FACETS:
            counts = by_field[name]
            for value in values[name]:
                n = counts.get(value, 0) + sign
                if n:
                    counts[value] = n
                else:
                    del counts[value]

    # --- keeping current ----------------------------------------------------------

    def change(self, old: Record | None, new: Record | None) -> None:
        """Follow one record from ``old`` to ``new`` (None: absent) through an event."""
        if old is not None and (new is None or new.created_at != old.created_at):
            self._remove(old)
            old = None
        if new is None:
            return
        if old is None:
            self._add(new)
            return
        slot = self.slot_of[new.id]
        old_code, new_code = self.state[slot], state_code(new.kind, new.status)
        old_values, new_values = facet_values(old), facet_values(new)
        if old_code != new_code or old_values != new_values:
            self._count(old_code, old_values, -1)
            self._count(new_code, new_values, +1)
        self.state[slot] = new_code
        for name, values in old_values.items():
            if values != new_values[name]:
                postings = self.facets[name]
                for value in set(values) - set(new_values[name]):
                    postings.remove(value, slot)
                for value in set(new_values[name]) - set(values):
                    postings.add(value, slot)
        old_text, new_text = _text_of(old), _text_of(new)
        if old_text != new_text:
            before, after = set(words_of(old_text)), set(words_of(new_text))
            for word in before - after:
                self._word_remove(word, slot)
            for word in after - before:
                self._word_add(word, slot)

    def _add(self, record: Record) -> None:
        key = (record.created_at, record.id)
        slot = len(self.keys)
        if self.newest is not None and key < self.newest:
            self.ordered = False  # NOTE: an older record arrived late (a backdated ingest, a merge)
        else:
            self.newest = key
        self.keys.append(key)
        code = state_code(record.kind, record.status)
        self.state.append(code)
        self.slot_of[record.id] = slot
        values = facet_values(record)
        self._count(code, values, +1)
        for name, vals in values.items():
            for value in vals:
                self.facets[name].add(value, slot)
        for word in record_words(record):
            self._word_add(word, slot)

    def _remove(self, record: Record) -> None:
        slot = self.slot_of.pop(record.id, None)
        if slot is None:
            return
        values = facet_values(record)
        self._count(self.state[slot], values, -1)
        for name, vals in values.items():
            for value in vals:
                self.facets[name].remove(value, slot)
        for word in record_words(record):
            self._word_remove(word, slot)
        self.keys[slot] = None
        self.state[slot] = 0

    def _word_add(self, word: str, slot: int) -> None:
        if self.words.add(word, slot):
            insort(self.vocab, word)
            if _typo_eligible(word):
                self._near_add(word)

    def _word_remove(self, word: str, slot: int) -> None:
        if self.words.remove(word, slot):
            i = bisect_left(self.vocab, word)
            if i < len(self.vocab) and self.vocab[i] == word:
                del self.vocab[i]
            if _typo_eligible(word):
                self._near_remove(word)

    # --- reading ---------------------------------------------------------------------

    def matching_words(self, word: str) -> list[str]:
        """The indexed words a query word matches: by prefix, and within one typo when long enough."""
        vocab = self.vocab
        found: list[str] = []
        i = bisect_left(vocab, word)
        while i < len(vocab) and vocab[i].startswith(word):
            found.append(vocab[i])
            i += 1
        if len(word) >= MIN_TYPO_LEN and not word.isdigit():
            candidates: set[str] = set()
            lists, near = self.words.lists, self.near
            for d in (word, *deletions(word)):
                if d != word and d in lists:
                    candidates.add(d)  # the query has one letter too many
                have = near.get(d)
                if have is not None:
                    candidates.update((have,) if type(have) is str else have)
            seen = set(found)
            found += sorted(c for c in candidates if c not in seen and within_one_edit(word, c))
        return found

    def word_slots(self, word: str) -> Sequence[int] | set[int]:
        """The slots of records with a word that ``word`` matches."""
        matched = self.matching_words(word)
        if len(matched) == 1:
            return self.words.get(matched[0])
        slots: set[int] = set()
        for w in matched:
            slots.update(self.words.get(w))
        return slots

    def candidates(self, filters: dict[str, str], favorite: bool, words: Iterable[str]) -> Sequence[int] | None:
        """Ascending slots that pass every posting filter (any state), or None when none is given.

        ``filters`` maps facet fields to exact values; ``words`` are query
        words (each split into search words, all of which must match).
        """
        lists: list[Sequence[int] | set[int]] = [self.facets[name].get(value) for name, value in filters.items()]
        if favorite:
            lists.append(self.facets[FAVORITE].get("1"))
        for raw in words:
            for word in words_of(raw):
                lists.append(self.word_slots(word))
        if not lists:
            return None
        lists.sort(key=len)
        if not lists[0]:
            return ()
        if len(lists) == 1:
            only = lists[0]
            return sorted(only) if isinstance(only, set) else only
        acc = set(lists[0])
        for other in lists[1:]:
            acc = acc.intersection(other)
            if not acc:
                return ()
        return sorted(acc)

    def select(self, slots: Sequence[int], codes: frozenset[int]) -> list[int]:
        """The slots among ``slots`` whose state is one of ``codes``, in time order."""
        state = self.state
        chosen = list(compress(slots, map(codes.__contains__, map(state.__getitem__, slots))))
        if not self.ordered:
            keys = self.keys
            chosen.sort(key=keys.__getitem__)
        return chosen

    def key_at(self, slot: int) -> tuple[str, str]:
        """The (created_at, id) of a live slot."""
        key = self.keys[slot]
        assert key is not None
        return key

    def counted(self, field: str, codes: frozenset[int]) -> dict[str, int]:
        """Facet counts of a field over every record in ``codes`` (no other filter)."""
        if len(codes) == 1:
            (code,) = codes
            return self.counts.get(code, {}).get(field, {})
        total: dict[str, int] = {}
        for code in codes:
            for value, n in self.counts.get(code, {}).get(field, {}).items():
                total[value] = total.get(value, 0) + n
        return total

    def count_within(self, field: str, slots: Sequence[int]) -> dict[str, int]:
        """Facet counts of a field over the given live slots."""
        chosen = set(slots)
        found: dict[str, int] = {}
        for value, posting in self.facets[field].lists.items():
            if type(posting) is int:
                n = 1 if posting in chosen else 0
            else:
                n = sum(map(chosen.__contains__, posting))
            if n:
                found[value] = n
        return found


def top(counts: dict[str, int], prefix: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most frequent values (ties by value), optionally only those starting with ``prefix``."""
    prefix = prefix.lower()
    items = [(v, n) for v, n in counts.items() if n > 0 and (not prefix or v.lower().startswith(prefix))]
    items.sort(key=lambda vn: (-vn[1], vn[0]))
    return [{"value": v, "count": n} for v, n in items[:limit]]
