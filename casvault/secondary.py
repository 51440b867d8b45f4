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
from sys import intern
from bisect import bisect_left, insort
from collections import Counter, defaultdict
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
    return _describe(record)[0]


def _describe(record: Record) -> tuple[dict[str, tuple[str, ...]], str]:
    """A record's facet values and its searchable text (one look at its source)."""
    model, loras, sampler = _source_names(record)
    seed = getattr(record, "seed", None)
    parts = (
        getattr(record, "prompt", None), getattr(record, "negative_prompt", None), model, *loras, sampler,
        None if seed is None else str(seed), record.original_filename,
    )
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
    }, " ".join(p for p in parts if p)


def share_names(record: Record) -> None:
    """Make the names in a record's ``source`` share one string object per value (memory: a library
    repeats a handful of models, samplers and LoRAs thousands of times)."""
    source = record.source
    if not isinstance(source, dict):
        return
    for key, value in source.items():
        if type(value) is str and len(value) <= 200:
            source[key] = intern(value)
        elif key == "loras" and type(value) is list:
            for lora in value:
                if type(lora) is dict and type(lora.get("name")) is str:
                    lora["name"] = intern(lora["name"])


def record_words(record: Record) -> set[str]:
    """The distinct search words of a record."""
    return set(_WORD_RE.findall(_describe(record)[1].lower()))


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


class NumberWords:
    """Search words made of digits only (seeds, file numbers), as one sorted run of fixed-width entries.

    Nearly every seed is a word of its own: a dict entry, a string and a
    posting for each would cost ~200 bytes a record; an entry here is 24.
    Longer numbers go to the ordinary word index.
    """

    WIDTH = 20
    ENTRY = WIDTH + 4

    def __init__(self, data: bytearray | None = None) -> None:
        self.data = data if data is not None else bytearray()

    @classmethod
    def entry(cls, word: str, slot: int) -> bytes:
        """The packed entry of ``word`` held by ``slot``."""
        return word.encode().ljust(cls.WIDTH, b"\0") + slot.to_bytes(4, "big")

    @classmethod
    def from_entries(cls, entries: list[bytes]) -> "NumberWords":
        """The index of unsorted packed entries (a bulk build)."""
        entries.sort()
        return cls(bytearray(b"".join(entries)))

    def __len__(self) -> int:
        return len(self.data) // self.ENTRY

    def __getitem__(self, i: int) -> bytes:
        return bytes(self.data[i * self.ENTRY:(i + 1) * self.ENTRY])

    def add(self, word: str, slot: int) -> None:
        """Record that ``slot`` holds ``word``."""
        entry = self.entry(word, slot)
        i = bisect_left(self, entry)
        if i == len(self) or self[i] != entry:
            self.data[i * self.ENTRY:i * self.ENTRY] = entry

    def remove(self, word: str, slot: int) -> None:
        """Record that ``slot`` no longer holds ``word``."""
        entry = self.entry(word, slot)
        i = bisect_left(self, entry)
        if i < len(self) and self[i] == entry:
            del self.data[i * self.ENTRY:(i + 1) * self.ENTRY]

    def slots_with_prefix(self, prefix: str) -> list[int]:
        """The slots holding a number that starts with ``prefix`` (digits, at most WIDTH of them)."""
        low = prefix.encode()
        high = low[:-1] + bytes((low[-1] + 1,))
        lo, hi = bisect_left(self, low), bisect_left(self, high)
        data, size, width = self.data, self.ENTRY, self.WIDTH
        return [int.from_bytes(data[i * size + width:(i + 1) * size], "big") for i in range(lo, hi)]


class ValueColumn:
    """A single-valued facet field by slot, as small integers (0: no value), for counting within a filter."""

    __slots__ = ("codes", "values", "ids")

    def __init__(self) -> None:
        self.codes = array("I")
        self.values: list[str | None] = [None]
        self.ids: dict[str, int] = {}

    def code(self, values: tuple[str, ...]) -> int:
        """The code of a record's value (kept for good once seen: a field has few distinct values)."""
        if not values:
            return 0
        code = self.ids.get(values[0])
        if code is None:
            code = self.ids[values[0]] = len(self.values)
            self.values.append(values[0])
        return code

    def set(self, slot: int, values: tuple[str, ...]) -> None:
        """Set the value of ``slot`` (the next slot appends)."""
        if slot == len(self.codes):
            self.codes.append(self.code(values))
        else:
            self.codes[slot] = self.code(values)

    def count(self, slots: Sequence[int]) -> dict[str, int]:
        """How many of ``slots`` hold each value."""
        counted = Counter(map(self.codes.__getitem__, slots))
        return {self.values[code]: n for code, n in counted.items() if code}  # type: ignore[misc]


# Facet fields that hold at most one value per record (the rest: tags, LoRAs).
SINGLE_VALUED = ("model", "sampler", "workflow_id", "aspect_ratio")


def _is_number(word: str) -> bool:
    return word.isdigit() and word.isascii() and len(word) <= NumberWords.WIDTH


class SecondaryIndex:
    """Posting lists, a word index and facet counts over one user's records."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str] | None] = []  # slot → (created_at, id); None once freed
        self.state = bytearray()  # slot → state_code, 0 when freed
        self.slot_of: dict[str, int] = {}
        self.ordered = True
        self.newest: tuple[str, str] | None = None
        self.facets: dict[str, Postings] = {name: Postings() for name in (*FACETS, FAVORITE)}
        self.columns = {name: ValueColumn() for name in SINGLE_VALUED}
        self.words = Postings()
        self.numbers = NumberWords()
        self.vocab: list[str] = []  # the words, sorted (prefix lookups)
        self.near: dict[str, Any] = {}  # deletion → word or tuple of words (typo lookups)
        # state code → facet → value → number of records
        self.counts: dict[int, dict[str, dict[str, int]]] = {}

    # --- building -------------------------------------------------------------

    @classmethod
    def build(cls, keyed: Iterable[tuple[tuple[str, str], Record]]) -> "SecondaryIndex":
        """Index ``(key, record)`` pairs in one pass, slots in key order (the keys are kept, not copied)."""
        index = cls()
        ordered = sorted(keyed, key=lambda kr: kr[0])
        facet_lists: dict[str, defaultdict[str, list[int]]] = {name: defaultdict(list) for name in index.facets}
        word_lists: defaultdict[str, list[int]] = defaultdict(list)
        keys, state, slot_of, columns = index.keys, index.state, index.slot_of, index.columns
        findall = _WORD_RE.findall
        # NOTE: the loop does the least per record and per word that it can
        # (a build is ~20 words a record); counts and numbers are split out after.
        for slot, (key, record) in enumerate(ordered):
            keys.append(key)
            state.append(state_code(record.kind, record.status))
            slot_of[record.id] = slot
            values, text = _describe(record)
            for name, column in columns.items():
                column.codes.append(column.code(values[name]))
            for name, vals in values.items():
                lists = facet_lists[name]
                for value in vals:
                    lists[value].append(slot)
            for word in set(findall(text.lower())):
                word_lists[word].append(slot)
        numbers: list[bytes] = []
        for word in [w for w in word_lists if _is_number(w)]:
            numbers += [NumberWords.entry(word, slot) for slot in word_lists.pop(word)]
        get_state = state.__getitem__
        for name in FACETS:
            for value, slots in facet_lists[name].items():
                for code, n in Counter(map(get_state, slots)).items():
                    index.counts.setdefault(code, {f: {} for f in FACETS})[name][value] = n
        index.newest = keys[-1] if keys else None
        index.facets = {name: Postings.from_lists(lists) for name, lists in facet_lists.items()}
        index.words = Postings.from_lists(word_lists)
        index.numbers = NumberWords.from_entries(numbers)
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
        (old_values, old_text), (new_values, new_text) = _describe(old), _describe(new)
        if old_code != new_code or old_values != new_values:
            self._count(old_code, old_values, -1)
            self._count(new_code, new_values, +1)
        self.state[slot] = new_code
        for name, values in old_values.items():
            if values != new_values[name]:
                if name in self.columns:
                    self.columns[name].set(slot, new_values[name])
                postings = self.facets[name]
                for value in set(values) - set(new_values[name]):
                    postings.remove(value, slot)
                for value in set(new_values[name]) - set(values):
                    postings.add(value, slot)
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
        values, text = _describe(record)
        self._count(code, values, +1)
        for name, column in self.columns.items():
            column.set(slot, values[name])
        for name, vals in values.items():
            for value in vals:
                self.facets[name].add(value, slot)
        for word in set(words_of(text)):
            self._word_add(word, slot)

    def _remove(self, record: Record) -> None:
        slot = self.slot_of.pop(record.id, None)
        if slot is None:
            return
        values, text = _describe(record)
        self._count(self.state[slot], values, -1)
        for name, vals in values.items():
            for value in vals:
                self.facets[name].remove(value, slot)
        for word in set(words_of(text)):
            self._word_remove(word, slot)
        self.keys[slot] = None
        self.state[slot] = 0

    def _word_add(self, word: str, slot: int) -> None:
        if _is_number(word):
            self.numbers.add(word, slot)
        elif self.words.add(word, slot):
            insort(self.vocab, word)
            if _typo_eligible(word):
                self._near_add(word)

    def _word_remove(self, word: str, slot: int) -> None:
        if _is_number(word):
            self.numbers.remove(word, slot)
        elif self.words.remove(word, slot):
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
        if _is_number(word):
            numbered = self.numbers.slots_with_prefix(word)
            if not matched:
                return sorted(set(numbered))
            slots: set[int] = set(numbered)
        elif len(matched) == 1:
            return self.words.get(matched[0])
        else:
            slots = set()
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
        if field in self.columns:
            return self.columns[field].count(slots)
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
