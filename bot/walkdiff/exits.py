"""Walk exits of C functions, found with tree-sitter: every goto/break/return/walk_done call that ends an rmap walk.

Works on whole files (tree mode) and on patch-hunk fragments (hunks mode, bot.walkdiff.fragments). Kernel
macros make tree-sitter emit ERROR nodes (`__always_inline`, `for_each_*(...) {`); we keep going and flag them.
In a fragment, anything above what the fragment shows is unknown: we never fill it in by guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tree_sitter import Node

from bot.walkdiff.cnodes import (
    LOOPS,
    call_name,
    calls_in,
    comment_text,
    cond_text,
    first_error,
    function_name,
    function_nodes,
    idents_in,
    is_walk_loop,
    loop_body,
    parse,
    source_of,
    text_of,
    walk,
)

WALK_DONE_CALL = "page_vma_mapped_walk_done"
FRAGMENT_FN = "__walkdiff_fragment"
UNKNOWN = "__walkdiff_unknown"


@dataclass
class Exit:
    kind: str  # goto | break | return | call
    target: str
    condition: str  # "" = unconditional within the walk; "unknown" = guard outside the visible code
    comment: str
    line: int  # 1-based line in the file (post-/pre-image numbering in hunks mode)
    outer_unknown: bool = False  # guards outside the hunk may add to `condition`
    idents: set[str] = field(default_factory=set)  # identifiers the condition reads
    calls: set[str] = field(default_factory=set)  # functions the condition calls
    guard_start: int = 0  # line of the outermost guard, feeds must precede it
    feeds: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "target": self.target,
            "condition": self.condition,
            "comment": self.comment,
            "feeds": self.feeds,
            "line": self.line,
        }
        if self.outer_unknown:
            out["outer_unknown"] = True
        return out


@dataclass
class Assign:
    """An assignment or initialised declaration; feeds conditions that read `ident`."""

    line: int
    ident: str
    text: str
    calls: set[str]


@dataclass
class FuncModel:
    name: str
    exits: list[Exit] = field(default_factory=list)
    assigns: list[Assign] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)  # every function the body calls, for helper closure
    has_walk_loop: bool = False
    parse_errors: bool = False
    error_line: int = 0  # first line tree-sitter could not parse
    text: str = ""  # source with comments, whitespace collapsed, to tell changed from unchanged functions
    path: str = ""

    def is_walk(self, functions: list[str], labels: list[str]) -> bool:
        return self.name in functions or self.has_walk_loop or bool(self.labels & set(labels))

    def finish(self) -> None:
        """Attach feeds: the last assignments before an exit's guard to identifiers its condition reads."""
        for ex in self.exits:
            hits = [a for a in self.assigns if a.ident in ex.idents and a.line < ex.guard_start]
            ex.feeds = list(dict.fromkeys(a.text for a in hits[-3:]))
            for a in hits[-3:]:
                ex.calls |= a.calls


class Extractor:
    """Exits of one function node (or the wrapper function of a fragment)."""

    def __init__(self, labels: list[str], line_base: int, fragment: bool, synthetic: tuple[int, int]):
        self.labels = labels
        self.line_base = line_base  # file line of the parsed text's first line, minus one
        self.fragment = fragment
        self.synth_open, self.synth_close = synthetic  # byte ranges of braces we added: [0, open) and [close, end)

    def line(self, node: Node) -> int:
        return node.start_point[0] + 1 + self.line_base

    def synthetic_block(self, node: Node) -> bool:
        """A block or if we opened ourselves: what guards it is outside the fragment."""
        return node.type in ("compound_statement", "if_statement") and node.start_byte < self.synth_open

    def model(self, fn: Node, name: str) -> FuncModel:
        body = fn.child_by_field_name("body")
        assert body is not None
        err = first_error(body)
        m = FuncModel(name=name, text=source_of(body), calls=calls_in(body))
        m.parse_errors, m.error_line = bool(err), err + self.line_base if err else 0
        loops = [n for n in walk(body) if is_walk_loop(n)]
        m.has_walk_loop = bool(loops)
        m.labels = {
            (lbl.text or b"").decode()
            for n in walk(body)
            if n.type == "labeled_statement" and (lbl := n.child_by_field_name("label")) is not None
        }
        regions = [loop_body(lp) for lp in loops] if loops and not self.fragment else [body]
        seen: set[int] = set()
        for region in regions:
            for n in walk(region):
                if n.id in seen:
                    continue
                seen.add(n.id)
                ex = self.exit_of(n, region, body)
                if ex is not None:
                    m.exits.append(ex)
        m.exits.sort(key=lambda e: e.line)
        m.assigns = self.assigns(body)
        return m

    def exit_of(self, n: Node, region: Node, body: Node) -> Exit | None:
        if n.type == "goto_statement":
            lbl = n.child_by_field_name("label")
            target = (lbl.text or b"").decode() if lbl is not None else ""
            if target not in self.labels and (self.fragment or self._label_inside(region, target)):
                return None
            return self.build(n, "goto", target, region, body)
        if n.type == "break_statement":
            owner = self._break_owner(n, body)
            # leaves the walk loop, or (fragment) a loop we cannot see
            if (owner is None and not self.fragment) or (owner is not None and not is_walk_loop(owner)):
                return None
            return self.build(n, "break", "walk loop", region, body)
        if n.type == "return_statement":
            val = n.named_children[0] if n.named_children else None
            target = "return " + text_of(val) if val is not None else "return"
            return self.build(n, "return", target, region, body)
        if n.type == "expression_statement" and n.named_children:
            call = n.named_children[0]
            if call.type == "call_expression" and call_name(call) == WALK_DONE_CALL:
                return self.build(n, "call", WALK_DONE_CALL, region, body)
        return None

    @staticmethod
    def _label_inside(region: Node, label: str) -> bool:
        for n in walk(region):
            lbl = n.child_by_field_name("label") if n.type == "labeled_statement" else None
            if lbl is not None and (lbl.text or b"").decode() == label:
                return True
        return False

    @staticmethod
    def _break_owner(n: Node, body: Node) -> Node | None:
        """The loop/switch a break leaves, None if that is outside what we see."""
        cur = n.parent
        while cur is not None and cur != body:
            if cur.type in LOOPS or cur.type == "switch_statement" or is_walk_loop(cur):
                return cur
            cur = cur.parent
        return None

    def build(self, n: Node, kind: str, target: str, region: Node, body: Node) -> Exit:
        conds: list[str] = []
        idents: set[str] = set()
        calls: set[str] = set()
        complete = True
        guard_top = n
        child, cur = n, n.parent
        while cur is not None and cur != region:
            if cur == body or cur.type == "function_definition":
                complete = not self.fragment
                break
            if self.synthetic_block(cur) or cur.type == "ERROR":
                complete = False
                break
            if is_walk_loop(cur):  # a walk loop inside a fragment: guards above it do not matter
                break
            if cur.type == "if_statement":
                cond = cur.child_by_field_name("condition")
                if cond is not None and child != cond:
                    text = cond_text(cond)
                    if child == cur.child_by_field_name("alternative"):
                        text = f"!({text})"
                    elif _needs_parens(cond):
                        text = f"({text})"
                    conds.append(text)
                    idents |= idents_in(cond)
                    calls |= calls_in(cond)
                    guard_top = cur
            child, cur = cur, cur.parent
        if self.fragment and cur == region and region == body:
            complete = False
        conds.reverse()
        if len(conds) == 1 and conds[0].startswith("(") and not conds[0].startswith("!"):
            conds[0] = conds[0][1:-1]  # a lone guard needs no parentheses
        condition = " && ".join(conds)
        if not complete and not conds:
            condition = "unknown"
        return Exit(
            kind=kind,
            target=target,
            condition=condition,
            comment=self.comment_above(n),
            line=self.line(n),
            outer_unknown=not complete and bool(conds),
            idents=idents,
            calls=calls,
            guard_start=self.line(guard_top),
        )

    def comment_above(self, n: Node) -> str:
        """The comment right above the exit, or above the if that guards it."""
        node = n
        for _ in range(4):
            prev = node.prev_sibling
            if prev is not None and prev.type == "comment":
                before = prev.prev_sibling
                if before is not None and before.end_point[0] == prev.start_point[0]:
                    return ""  # `foo(); /* ... */`: that comment is about foo()
                parts = [prev]
                while (p := parts[0].prev_sibling) is not None and p.type == "comment":
                    parts.insert(0, p)
                return " ".join(comment_text(c) for c in parts)
            if prev is not None and prev.type not in ("{", "else", "parenthesized_expression"):
                return ""  # another statement sits between
            parent = node.parent  # first in its branch: climb to the guarding if
            while parent is not None and parent.type in ("compound_statement", "else_clause"):
                up = parent.parent
                if self.synthetic_block(parent) or up is None or up.type not in ("if_statement", "else_clause"):
                    return ""
                parent = up
            if parent is None or parent.type != "if_statement":
                return ""
            node = parent
        return ""

    def assigns(self, body: Node) -> list[Assign]:
        out: list[Assign] = []
        for n in walk(body):
            ident, text = "", ""
            if n.type == "assignment_expression":
                left = n.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    ident, text = (left.text or b"").decode(), text_of(n)
            elif n.type == "update_expression":
                arg = n.child_by_field_name("argument")
                if arg is not None and arg.type == "identifier":
                    ident, text = (arg.text or b"").decode(), text_of(n)
            elif n.type == "init_declarator":
                decl = n.child_by_field_name("declarator")
                typ = n.parent.child_by_field_name("type") if n.parent is not None else None
                if decl is not None and decl.type == "identifier":
                    ident = (decl.text or b"").decode()
                    text = (text_of(typ) + " " if typ is not None else "") + text_of(n)
            if not ident:
                continue
            guard = _guarding_if(n, body)
            if guard is not None:
                text = f"if ({cond_text(guard)}) {text}"
            out.append(Assign(self.line(n), ident, text, calls_in(n) | (calls_in(guard) if guard else set())))
        out.sort(key=lambda a: a.line)
        return out


def _needs_parens(cond: Node) -> bool:
    """`a || b` must keep its parentheses once &&-joined with other guards."""
    inner = cond.named_children[0] if cond.type == "parenthesized_expression" and cond.named_children else cond
    if inner.type == "conditional_expression" or inner.type == "comma_expression":
        return True
    if inner.type != "binary_expression":
        return False
    op = inner.child_by_field_name("operator")
    return op is not None and op.type == "||"


def _guarding_if(n: Node, body: Node) -> Node | None:
    """The condition of the if whose branch holds the assignment statement (one level only)."""
    stmt = n
    while stmt.parent is not None and stmt.type not in ("expression_statement", "declaration"):
        stmt = stmt.parent
    parent = stmt.parent
    if parent is not None and parent.type == "compound_statement" and parent != body:
        parent = parent.parent
    if parent is not None and parent.type == "if_statement":
        return parent.child_by_field_name("condition")
    return None


def analyse_source(src: str, labels: list[str], path: str = "") -> dict[str, FuncModel]:
    """Every function of a whole C file; a name defined twice (#ifdef stubs) keeps its longest body."""
    data = src.encode()
    out: dict[str, FuncModel] = {}
    ex = Extractor(labels, 0, fragment=False, synthetic=(0, len(data) + 1))
    for fn in function_nodes(parse(data)):
        name = function_name(fn)
        m = ex.model(fn, name)
        m.path = path
        if name not in out or len(m.text) > len(out[name].text):
            out[name] = m
    for m in out.values():
        m.finish()
    return out
