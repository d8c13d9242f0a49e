"""Class vocabularies: ids and readable names per mechanism, and name resolution."""

import difflib
from dataclasses import dataclass, field


class UnknownName(ValueError):
    """A name that is no class of the vocabulary; carries the closest matches."""

    def __init__(self, field_name: str, word: str, suggestions: list[str]):
        self.field = field_name
        self.word = word
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"{field_name}: unknown class name {word!r}{hint}")


@dataclass(frozen=True)
class Resolved:
    id: int
    name: str
    via: str = "id"  # "id", "name", "alias", "hypernym": how the word was resolved


@dataclass
class Vocabulary:
    """Names (index = class id) and extra aliases; lookups are case-insensitive."""

    names: list[str]
    aliases: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {n.lower(): i for i, n in enumerate(self.names)}
        self._aliases = {a.lower(): i for a, i in self.aliases.items()}

    def __len__(self) -> int:
        return len(self.names)

    def resolve(self, field_name: str, value: int | str) -> Resolved:
        if isinstance(value, bool):
            raise ValueError(f"{field_name}: expected a class id or name, got {value!r}")
        if isinstance(value, int):
            if not 0 <= value < len(self.names):
                raise ValueError(f"{field_name}: class id must be in [0, {len(self.names) - 1}], got {value}")
            return Resolved(value, self.names[value], "id")
        word = value.strip().lower()
        if word in self._index:
            return Resolved(self._index[word], self.names[self._index[word]], "name")
        if word in self._aliases:
            return Resolved(self._aliases[word], self.names[self._aliases[word]], "alias")
        if word.isdigit():
            return self.resolve(field_name, int(word))
        found = self.lookup_extra(word)
        if found is not None:
            return found
        raise UnknownName(field_name, value, self.closest(word))

    def lookup_extra(self, word: str) -> Resolved | None:
        """Hook for richer resolution (WordNet hypernyms for ImageNet)."""
        return None

    def closest(self, word: str, n: int = 5) -> list[str]:
        pool = list(self._index) + list(self._aliases)
        hits = difflib.get_close_matches(word.lower(), pool, n=n, cutoff=0.5)
        return [self.names[self._index[h]] if h in self._index else h for h in hits]

    def search(self, query: str, limit: int = 20) -> list[tuple[int, str]]:
        q = query.strip().lower()
        hits = [(i, n) for i, n in enumerate(self.names) if q in n.lower()]
        hits += [(i, self.names[i]) for a, i in self._aliases.items() if q in a and (i, self.names[i]) not in hits]
        return hits[:limit]
