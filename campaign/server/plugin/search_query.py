"""Elasticsearch's `simple_query_string`, as argilla-server sends it, read into a tree and written as FTS5.

argilla-server 2.8 passes the text of the search box and of the SDK's `rg.Query(query=...)` to
Elasticsearch as a `simple_query_string` with `default_operator: AND` and every operator flag on. That
query never fails on syntax: what it cannot read it ignores. `parse` follows Lucene's SimpleQueryParser
rule by rule (each rule is a comment where it is applied); `to_fts5` turns the tree into one FTS5 MATCH
expression in which every word the user typed is a double-quoted string, so no operator, column filter
or other FTS5 syntax can come from the user.

Words are what FTS5's unicode61 tokenizer indexes: runs of letters, digits and private-use characters
(combining marks stay with their letter); everything else separates words and is dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

AND = "AND"
OR = "OR"
# Parentheses nested deeper than this are read as plain characters (as Elasticsearch reads them when
# the PRECEDENCE flag is off), so that parsing a hostile query never runs out of stack.
MAX_GROUP_DEPTH = 8
# FTS5 parses an expression with a fixed stack: a tree nested deeper than this (for example
# `a | b c | d e | ...`, where every change of operator opens a group) matches nothing instead.
MAX_FTS5_DEPTH = 24
_WHITESPACE = " \t\n\r"
_INTEGER = re.compile(r"[+-]?\d+")
# What Java's String.trim() strips: every character up to and including the space.
_JAVA_TRIM = "".join(chr(c) for c in range(0x21))


@dataclass(frozen=True)
class Words:
    """A term: every word must occur (a term such as `foo-bar` is two words)."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Phrase:
    """Words in this order, or with `slop` > 0 within `slop` words of each other."""

    words: tuple[str, ...]
    slop: int = 0


@dataclass(frozen=True)
class Prefix:
    """Words as a phrase whose last word is a prefix; no word matches nothing."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    """Every record that does not match `child`."""

    child: Node


@dataclass
class Group:
    """Clauses joined by one operator, AND or OR (Lucene's BooleanQuery of MUST or SHOULD clauses)."""

    op: str
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class MatchAll:
    """Every record: the query `*`."""


Node = Words | Phrase | Prefix | Not | Group | MatchAll


def words(text: str) -> tuple[str, ...]:
    """The words FTS5's unicode61 tokenizer finds in `text` (case and accents are folded by FTS5 itself)."""
    found: list[str] = []
    current: list[str] = []
    has_base = False
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LN" or category == "Co":
            current.append(char)
            has_base = True
        elif category[0] == "M":
            current.append(char)
        else:
            if has_base:
                found.append("".join(current))
            current, has_base = [], False
    if has_base:
        found.append("".join(current))
    return tuple(found)


def parse(query: str) -> Node | None:
    """The query's tree, or None when nothing in it can be searched (Elasticsearch then matches nothing)."""
    # Rule: the query `*` (surrounding whitespace aside) matches every record.
    if query.strip(_JAVA_TRIM) == "*":
        return MatchAll()
    return _Parser(query).parse_group(0, len(query), depth=0)


@dataclass
class _State:
    """The parse of one group: the tree so far, the pending operator and the count of `-` before a clause."""

    index: int
    end: int
    top: Node | None = None
    current_op: str | None = None
    previous_op: str | None = None
    nots: int = 0
    groups: bool = True


class _Parser:
    def __init__(self, query: str) -> None:
        self.data = query

    def parse_group(self, start: int, end: int, *, depth: int) -> Node | None:
        state = _State(start, end, groups=depth < MAX_GROUP_DEPTH)
        data = self.data
        groups = state.groups
        while state.index < state.end:
            char = data[state.index]
            if char == "(" and groups:
                self._group(state, depth)
            elif char == ")" and groups:
                # Rule: a `)` without its `(` is ignored.
                state.index += 1
            elif char == '"':
                self._phrase(state)
            elif char in "+|":
                # Rule: `+` is AND and `|` is OR between the clauses on either side. An operator with no
                # clause before it, or after another operator, is ignored.
                if state.current_op is None and state.top is not None:
                    state.current_op = AND if char == "+" else OR
                state.index += 1
            elif char == "-":
                # Rule: `-` right before a clause negates it; `--` cancels out. Anything else between the
                # `-` and the clause, even a space, drops the `-`.
                state.nots += 1
                state.index += 1
                continue
            elif char in _WHITESPACE:
                state.index += 1
            else:
                self._token(state)
            state.nots = 0
        return _frozen(state.top)

    def _unescaped(self, start: int, end: int) -> Iterator[tuple[int, str, bool]]:
        """Each character from `start`, and whether a `\\` before it made it literal (the `\\` is skipped)."""
        escaped = False
        for index in range(start, end):
            char = self.data[index]
            if char == "\\" and not escaped:
                escaped = True
                continue
            yield index, char, escaped
            escaped = False

    def _group(self, state: _State, depth: int) -> None:
        # Rule: `( ... )` is a group, read on its own. The group ends at the `)` that balances it, not
        # counting escaped parentheses (a `)` inside quotes counts). A `(` never closed is ignored; `()`
        # is ignored along with an operator before it.
        start = state.index + 1
        level, close = 1, state.end
        for index, char, escaped in self._unescaped(start, state.end):
            if not escaped and char in "()":
                level += 1 if char == "(" else -1
                if level == 0:
                    close = index
                    break
        if close == state.end:
            state.index = start
        elif close == start:
            state.current_op = None
            state.index = close + 1
        else:
            _add(state, self.parse_group(start, close, depth=depth + 1))
            state.index = close + 1

    def _phrase(self, state: _State) -> None:
        # Rule: `"..."` is a phrase: its words in this order. `"..."~N` lets them stand within N words
        # of each other (`~` alone: 2; an unreadable N: 0). `\` makes the next character literal. A `"`
        # never closed is ignored (what follows it is read as terms); `""` is ignored along with an
        # operator before it.
        start = state.index + 1
        close, has_slop = state.end, False
        buffer: list[str] = []
        for index, char, escaped in self._unescaped(start, state.end):
            if char == '"' and not escaped:
                close = index
                break
            buffer.append(char)
        if close + 1 < state.end and self.data[close + 1] == "~":
            close += 1
            has_slop = close + 1 < state.end
        if close == state.end:
            state.index = start
        elif close == start:
            state.current_op = None
            state.index = close + 1
        else:
            state.index = close
            slop = self._fuzziness(state) if has_slop else 0
            found = words("".join(buffer))
            _add(state, Phrase(found, slop) if found else None)
            state.index += 1

    def _token(self, state: _State) -> None:
        # Rule: a term runs up to whitespace or one of `" | + ( )`; `-` and `*` inside it are plain
        # characters and `\` makes the next character literal. A term ending in an unescaped `*` is a
        # prefix. `term~N` asks for fuzziness, which FTS5 cannot do: the term must match exactly. A
        # term with no word in it (`!`, `&`) is ignored.
        data = self.data
        buffer: list[str] = []
        escaped = prefix = fuzzy = False
        while state.index < state.end:
            char = data[state.index]
            if not escaped:
                if char == "\\":
                    escaped = True
                    prefix = False
                    state.index += 1
                    continue
                if _ends_token(char, state.groups):
                    break
                if buffer and char == "~":
                    fuzzy = True
                    break
                prefix = bool(buffer) and char == "*"
            escaped = False
            buffer.append(char)
            state.index += 1
        if not buffer:
            return
        if fuzzy:
            self._fuzziness(state)
        if prefix and not fuzzy:
            _add(state, Prefix(words("".join(buffer[:-1]))))
            return
        found = words("".join(buffer))
        _add(state, Words(found) if found else None)

    def _fuzziness(self, state: _State) -> int:
        """The N of `~N` at the index (2 when absent, 0 when not a number); leaves the index past it."""
        data = self.data
        digits: list[str] = []
        while state.index < state.end:
            state.index += 1
            if state.index < state.end:
                if _ends_token(data[state.index], state.groups):
                    break
                digits.append(data[state.index])
        text = "".join(digits)
        if not text:
            return 2
        # Java's Integer.parseInt: an optional sign and decimal digits, within 32 bits; else 0.
        value = int(text) if _INTEGER.fullmatch(text) else 0
        return value if 0 <= value < 2**31 else 0


def _ends_token(char: str, groups: bool) -> bool:
    return char in _WHITESPACE or char in '"|+' or (groups and char in "()")


def _add(state: _State, branch: Node | None) -> None:
    """Lucene's buildQueryTree: join a clause to the group's tree.

    Rule: clauses are joined left to right with no precedence between AND and OR: `a | b c` is
    `(a | b) c`. A clause with no operator before it is joined with AND (argilla-server's default).
    """
    if branch is None:
        return
    if state.nots % 2 == 1:
        branch = Not(branch)
    if state.top is None:
        state.top = branch
    else:
        op = state.current_op or AND
        if state.previous_op != op or not isinstance(state.top, Group):
            state.top = Group(op, [state.top])
        state.top.children.append(branch)
        state.previous_op = op
    state.current_op = None


def _frozen(node: Node | None) -> Node | None:
    """The tree with groups of one clause replaced by the clause, and a group inside one of the same operator merged."""
    if isinstance(node, Not):
        child = _frozen(node.child)
        return Not(child) if child is not None else None
    if not isinstance(node, Group):
        return node
    children: list[Node] = []
    for child in node.children:
        simple = _frozen(child)
        if isinstance(simple, Group) and simple.op == node.op:
            children.extend(simple.children)
        elif simple is not None:
            children.append(simple)
    if len(children) == 1:
        return children[0]
    return Group(node.op, children)


@dataclass(frozen=True)
class Match:
    """What a query matches: the records that match `expression` (an FTS5 MATCH expression), or with
    `negated` the records that do not. An `expression` of None matches no record."""

    expression: str | None
    negated: bool = False
    depth: int = 0

    @property
    def matches_nothing(self) -> bool:
        """No record can match."""
        return self.expression is None and not self.negated


NOTHING = Match(None)
EVERYTHING = Match(None, negated=True)


def to_fts5(node: Node | None) -> Match:
    """The FTS5 form of a query tree (see `Match`); a tree too deep for FTS5 matches nothing."""
    match = _compile(node) if node is not None else NOTHING
    return NOTHING if match.depth > MAX_FTS5_DEPTH else match


def _quote(text: str) -> str:
    """An FTS5 string: the tokenizer reads its words; no character in it is an operator."""
    return '"' + text.replace('"', '""') + '"'


def _compile(node: Node) -> Match:
    if isinstance(node, MatchAll):
        return EVERYTHING
    if isinstance(node, Words):
        return Match(" AND ".join(_quote(w) for w in node.words), depth=0)
    if isinstance(node, Phrase):
        if node.slop == 0 or len(node.words) == 1:
            return Match(_quote(" ".join(node.words)))
        return Match(f"NEAR({' '.join(_quote(w) for w in node.words)}, {node.slop})")
    if isinstance(node, Prefix):
        return Match(_quote(" ".join(node.words)) + "*") if node.words else NOTHING
    if isinstance(node, Not):
        inner = _compile(node.child)
        return Match(inner.expression, not inner.negated, inner.depth)
    return _compile_group(node.op, [_compile(child) for child in node.children])


def _compile_group(op: str, parts: list[Match]) -> Match:
    """AND or OR of matches, some of them negated, as one FTS5 expression (possibly negated).

    FTS5 has only a binary NOT (`a NOT b`), so a negated part joins the others as
    `(positives) NOT (negatives)`; where no positive part is left, the whole is negated instead:
    `-a -b` is "not (a OR b)", and `a | -b` is "not (b NOT a)".
    """
    positives = [p for p in parts if not p.negated]
    negatives = [p for p in parts if p.negated]
    if op == AND:
        if any(p.matches_nothing for p in positives):
            return NOTHING
        # A negated part with no expression matches every record: AND with it changes nothing.
        negatives = [p for p in negatives if p.expression is not None]
        if positives:
            return _but_not(_join(AND, positives), _join(OR, negatives))
        return _negate(_join(OR, negatives))
    if any(p.negated and p.expression is None for p in negatives):
        return EVERYTHING
    positives = [p for p in positives if not p.matches_nothing]
    if not negatives:
        return _join(OR, positives)
    return _negate(_but_not(_join(AND, negatives), _join(OR, positives)))


def _join(op: str, parts: list[Match]) -> Match:
    """Expressions joined by AND or OR (none: nothing)."""
    if not parts:
        return NOTHING
    if len(parts) == 1:
        return Match(parts[0].expression, depth=parts[0].depth)
    return Match(f" {op} ".join(f"({p.expression})" for p in parts), depth=1 + max(p.depth for p in parts))


def _but_not(keep: Match, drop: Match) -> Match:
    if drop.expression is None or keep.expression is None:
        return keep
    return Match(f"({keep.expression}) NOT ({drop.expression})", depth=1 + max(keep.depth, drop.depth))


def _negate(match: Match) -> Match:
    return Match(match.expression, not match.negated, match.depth)
