"""Diagnostics parsing and the base/revision matching of bot.build_warnings."""

from __future__ import annotations

from bot.build import warnings as bw

LOG = """\
  CC      mm/rmap.o
/src/mm/rmap.c: In function 'try_to_unmap_one':
/src/mm/rmap.c:1853:13: warning: unused variable 'crossed' [-Wunused-variable]
 1853 |         int crossed;
      |             ^~~~~~~
/src/include/linux/mm.h:12:5: warning: 'x' may be used uninitialized [-Wmaybe-uninitialized]
/src/include/linux/mm.h:12:5: warning: 'x' may be used uninitialized [-Wmaybe-uninitialized]
/build/include/generated/foo.h:3: warning: generated thing
../src/arch/x86/kernel/x.c:7:1: error: expected ';' before '}' token
./include/generated/bar.h:1:1: warning: generated, relative
mm/slub.c:99:2: fatal error: nothere.h: No such file or directory
make[2]: *** [/src/scripts/Makefile.build:287: mm/rmap.o] Error 1
"""


def test_parse_normalizes_paths_and_dedups():
    diags = bw.parse(LOG)
    assert [(d.file, d.line, d.kind) for d in diags] == [
        ("mm/rmap.c", 1853, "warning"),
        ("include/linux/mm.h", 12, "warning"),
        ("<build>/include/generated/foo.h", 3, "warning"),
        ("arch/x86/kernel/x.c", 7, "error"),
        ("include/generated/bar.h", 1, "warning"),
        ("mm/slub.c", 99, "error"),
    ]
    assert diags[0].message == "unused variable 'crossed' [-Wunused-variable]"


def test_line_moves_are_not_new_but_new_text_is():
    base = [bw.Diagnostic("mm/rmap.c", 100, "warning", "unused variable 'a'", "int a;")]
    after = [
        bw.Diagnostic("mm/rmap.c", 130, "warning", "unused variable 'a'", "int a;"),  # shifted by the patch
        bw.Diagnostic("mm/rmap.c", 140, "warning", "unused variable 'crossed'", "int crossed;"),
        bw.Diagnostic("mm/util.c", 100, "warning", "unused variable 'a'", "int a;"),  # other file
    ]
    new = bw.new_diagnostics(after, base)
    assert [(d.file, d.line) for d in new] == [("mm/rmap.c", 140), ("mm/util.c", 100)]


def test_with_text_reads_tree_and_build_dir(tmp_path):
    src, build = tmp_path / "src", tmp_path / "build"
    (src / "mm").mkdir(parents=True)
    (build / "gen").mkdir(parents=True)
    (src / "mm" / "a.c").write_text("one\n   int crossed;  \nthree\n")
    (build / "gen" / "g.h").write_text("generated\n")
    diags = [bw.Diagnostic("mm/a.c", 2, "warning", "m"), bw.Diagnostic("<build>/gen/g.h", 1, "warning", "m"),
             bw.Diagnostic("mm/gone.c", 5, "warning", "m"), bw.Diagnostic("mm/a.c", 99, "warning", "m"),
             bw.Diagnostic("gen/g.h", 1, "warning", "m")]
    texts = [d.text for d in bw.with_text(diags, bw.line_reader(src, build))]
    assert texts == ["int crossed;", "generated", "", "", "generated"]


def test_first_error():
    assert bw.first_error(bw.parse(LOG), LOG) == "arch/x86/kernel/x.c:7: error: expected ';' before '}' token"
    make_only = "make: *** [Makefile:2: all] Error 2\n"
    assert bw.first_error([], make_only) == "make: *** [Makefile:2: all] Error 2"
    assert "no error line" in bw.first_error([], "nothing\n")


def test_json_round_trip():
    d = bw.Diagnostic("mm/a.c", 2, "warning", "m", "int x;")
    assert bw.Diagnostic.from_json(d.to_json()) == d


def test_a_warning_on_a_line_the_patch_edited_is_the_old_one_but_a_second_of_its_kind_is_new() -> None:
    base = [bw.Diagnostic("mm/rmap.c", 18, "warning", "implicit declaration of function 'f'", "if (f(x))")]
    edited = bw.Diagnostic("mm/rmap.c", 18, "warning", "implicit declaration of function 'f'", "if (f(x) && y)")
    assert bw.new_diagnostics([edited], base) == []
    another = bw.Diagnostic("mm/rmap.c", 40, "warning", "implicit declaration of function 'f'", "return f(z);")
    assert bw.new_diagnostics([edited, another], base) == [another]
