"""tree-sitter over kernel C: parsing, the text of nodes (comments kept or dropped), names, calls and identifiers,
and the loop shapes of page-table walks (page_vma_mapped_walk() loops and for_each_*() macro loops)."""

from __future__ import annotations

from collections.abc import Iterator

import tree_sitter_c
from tree_sitter import Language, Node, Parser

_PARSER = Parser(Language(tree_sitter_c.language()))
WALK_CALL = "page_vma_mapped_walk"
LOOPS = ("for_statement", "while_statement", "do_statement")


def parse(src: bytes) -> Node:
    return _PARSER.parse(src).root_node


def text_of(node: Node) -> str:
    """Source text without comments, whitespace collapsed: `( a &&\n b )` -> `(a && b)`."""
    raw = node.text or b""
    cuts = [(c.start_byte - node.start_byte, c.end_byte - node.start_byte) for c in walk(node) if c.type == "comment"]
    for s, e in reversed(cuts):
        raw = raw[:s] + b" " + raw[e:]
    out = " ".join(raw.decode(errors="replace").split())
    return out.replace("( ", "(").replace(" )", ")")


def source_of(node: Node) -> str:
    """Source text with comments, whitespace collapsed: a function whose exit comment changed has changed."""
    return " ".join((node.text or b"").decode(errors="replace").split())


def cond_text(cond: Node) -> str:
    """An if's condition, outer parentheses dropped."""
    inner = cond
    while inner.type == "parenthesized_expression" and inner.named_child_count == 1:
        inner = inner.named_children[0]
    return text_of(inner)


def comment_text(node: Node) -> str:
    raw = (node.text or b"").decode(errors="replace").strip()
    if raw.startswith("//"):
        raw = raw[2:]
    else:
        raw = raw.removeprefix("/*").removesuffix("*/")
    lines = [ln.strip().lstrip("*").strip() for ln in raw.splitlines()]
    return " ".join(ln for ln in lines if ln)


def walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def call_name(call: Node) -> str:
    fn = call.child_by_field_name("function")
    return (fn.text or b"").decode() if fn is not None and fn.type == "identifier" else ""


def calls_in(node: Node) -> set[str]:
    return {name for n in walk(node) if n.type == "call_expression" and (name := call_name(n))}


def idents_in(node: Node) -> set[str]:
    out = set()
    for n in walk(node):
        if n.type != "identifier":
            continue
        p = n.parent
        if p is not None and p.type == "call_expression" and p.child_by_field_name("function") == n:
            continue
        out.add((n.text or b"").decode())
    return out


def function_name(fn: Node) -> str:
    decl = fn.child_by_field_name("declarator")
    while decl is not None and decl.type != "identifier":
        if decl.type == "function_declarator" or "declarator" in decl.type:
            decl = decl.child_by_field_name("declarator")
        else:
            return ""
    return (decl.text or b"").decode() if decl is not None else ""


def function_nodes(root: Node) -> Iterator[Node]:
    """Every function definition, also those tree-sitter put inside ERROR nodes."""
    for n in walk(root):
        if n.type == "function_definition" and n.child_by_field_name("body") is not None and function_name(n):
            yield n


def _macro_loop_head(stmt: Node) -> bool:
    """`for_each_x(a, b)` written like a loop header: a call statement missing its `;`."""
    if stmt.type != "expression_statement" or not stmt.named_children:
        return False
    call = stmt.named_children[0]
    missing = any(c.is_missing for c in stmt.children) or stmt.children[-1].type != ";"
    return call.type == "call_expression" and "for_each" in call_name(call) and missing


def is_macro_loop_body(node: Node) -> bool:
    prev = node.prev_named_sibling
    return prev is not None and _macro_loop_head(prev)


def is_walk_loop(node: Node) -> bool:
    """`while (page_vma_mapped_walk(&pvmw))` or the body of a `for_each_*()` macro loop."""
    if node.type == "while_statement":
        cond = node.child_by_field_name("condition")
        return cond is not None and WALK_CALL in calls_in(cond)
    return node.type != "comment" and is_macro_loop_body(node)


def loop_body(loop: Node) -> Node:
    body = loop.child_by_field_name("body") if loop.type == "while_statement" else None
    return body if body is not None else loop


def first_error(body: Node) -> int:
    """Row+1 of the first ERROR/MISSING node, not counting the `;` a for_each macro loop header lacks; 0 if none."""
    for n in walk(body):
        if n.type == "ERROR" or n.is_missing:
            if n.is_missing and n.parent is not None and _macro_loop_head(n.parent):
                continue
            return n.start_point[0] + 1
    return 0
