"""Hunks mode's view of C: a patch hunk's lines are a fragment of a function, wrapped so tree-sitter parses it,
its walk exits extracted as far as the fragment shows them, and the fragments of one function merged."""

from __future__ import annotations

from tree_sitter import Node

from bot.walkdiff.cnodes import function_name, function_nodes, parse, source_of
from bot.walkdiff.exits import FRAGMENT_FN, UNKNOWN, Extractor, FuncModel


def _scan(text: str) -> tuple[int, int, int, int, bool]:
    """Lex C just enough (comments, strings, chars) to count braces and parentheses.

    Returns (index of the last unmatched ')', unclosed '(' count, lowest brace depth, final brace depth,
    ends inside a comment). Not brace matching by regex: braces in comments and strings do not count.
    """
    cut = -1
    paren = brace = low = 0
    i, n, state = 0, len(text), ""
    while i < n:
        c, two = text[i], text[i : i + 2]
        if state == "block":
            if two == "*/":
                state, i = "", i + 2
                continue
        elif state == "line":
            state = "" if c == "\n" else state
        elif state in ('"', "'"):
            if c == "\\":
                i += 2
                continue
            if c == state or c == "\n":
                state = ""
        elif two in ("/*", "//"):
            state, i = ("block" if two == "/*" else "line"), i + 2
            continue
        elif c in ('"', "'"):
            state = c
        elif c == "(":
            paren += 1
        elif c == ")":
            paren -= 1
            if paren < 0:
                cut, paren = i, 0
        elif c in "{}":
            brace += 1 if c == "{" else -1
            low = min(low, brace)
        i += 1
    return cut, paren, low, brace, state == "block"


def _blank(s: str) -> str:
    return "".join(ch if ch == "\n" else " " for ch in s)


def _lex_balance(text: str) -> tuple[str, int, int]:
    """Make a hunk fragment parseable: returns (text, '{' to put before it, '}' to put after it).

    A fragment that starts inside a comment loses that comment's tail; one that starts inside a
    condition (`... folio)) {`) loses it up to and with its `{`, so the matching `}` closes a block we
    add and mark synthetic (its guard is unknown).
    """
    first_close = text.find("*/")
    if first_close >= 0 and text.find("/*", 0, first_close) < 0:
        text = _blank(text[: first_close + 2]) + text[first_close + 2 :]
    cut, _, _, _, _ = _scan(text)
    if cut >= 0:
        rest = text[cut + 1 :]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            k = len(rest) - len(stripped)
            rest = rest[:k] + " " + stripped[1:]
        text = _blank(text[: cut + 1]) + rest
    _, paren, low, brace, in_comment = _scan(text)
    if in_comment:
        text += " */"
    if paren > 0:
        text += ")" * paren + ";"
    return text, -low, brace - low


def fragment_def(text: str) -> tuple[Node, bytes] | None:
    """If text starts with a function definition, its node (parsed with closing braces added)."""
    body, _opens, closes = _lex_balance(text)
    data = (body + ("\n;" if closes else "\n") + "}" * closes).encode()
    root = parse(data)
    for child in root.named_children:
        if child.type == "comment":
            continue
        if child.type == "function_definition" and function_name(child) and child.start_point[0] <= 1:
            return child, data
        return None
    return None


def analyse_fragment(text: str, name: str, first_line: int, labels: list[str]) -> FuncModel:
    """Exits of a piece of one function: a whole/partial definition or a run of body lines."""
    found = fragment_def(text)
    if found is not None:
        node, data = found
        ex = Extractor(labels, first_line - 1, fragment=False, synthetic=(0, len(data) + 1))
        m = ex.model(node, function_name(node))
        return m
    body, opens, closes = _lex_balance(text)
    # an unmatched '}' may be followed by `else`: open it with an if whose condition we mark unknown
    prefix = f"void {FRAGMENT_FN}(void) {{" + f"if ({UNKNOWN}) {{" * opens
    data = (prefix + "\n" + body + "\n;" + "}" * (closes + 1)).encode()
    root = parse(data)
    fn = next((f for f in function_nodes(root) if function_name(f) == FRAGMENT_FN), None)
    m = FuncModel(name=name, parse_errors=True)
    if fn is None:
        return m
    ex = Extractor(labels, first_line - 2, fragment=True, synthetic=(len(prefix), len(data)))
    m = ex.model(fn, name)
    m.text = source_of(fn.child_by_field_name("body") or fn)
    return m


def merge_models(name: str, parts: list[FuncModel]) -> FuncModel:
    """One function seen through several fragments."""
    m = FuncModel(name=name)
    for p in parts:
        m.exits += p.exits
        m.assigns += p.assigns
        m.labels |= p.labels
        m.calls |= p.calls
        m.has_walk_loop |= p.has_walk_loop
        m.parse_errors |= p.parse_errors
        m.error_line = m.error_line or p.error_line
        m.text += p.text + "\n"
    m.exits.sort(key=lambda e: e.line)
    m.assigns.sort(key=lambda a: a.line)
    m.finish()
    return m
