"""The base a revision is compared with, per arch: its full build (warnings cached by base commit, arch and
config hash; its image kept so the boot stage can tell old findings from new), and — with the tree at the
base — the single-object compiles of the touched files: W=1 on the main config, and the KASAN config for
touched files the main config does not compile.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bot import repo
from bot.build import objects
from bot.build import warnings as bw
from bot.build.builder import Builder, MakeRun
from bot.config import Config
from bot.results import write_json_atomic

WARNINGS_FORMAT = 2  # bump when the cached base-warnings format or matching changes


@dataclass
class BaseWork:
    """What one arch's base gives the revision's build to compare with."""

    builder: Builder
    diags: list[bw.Diagnostic]
    w1: dict[str, list[bw.Diagnostic]] = field(default_factory=dict)
    variant: Builder | None = None  # the KASAN config, for touched files the main config does not compile
    variant_diags: dict[str, list[bw.Diagnostic]] = field(default_factory=dict)


def prepare(config: Config, b: Builder, base: str, sources: list[str]) -> tuple[BaseWork | None, str]:
    """The base's full build (cached) and its single-object compiles of `sources` (the touched .c files);
    (None, why) when the base does not build. Leaves the tree at `base` when it had to build or compile."""
    diags, why = base_diagnostics(config, b, base)
    if diags is None:
        return None, why
    work = BaseWork(b, diags)
    if not sources:
        return work, ""
    repo.switch(config, base)  # the single-object compiles read the base's own sources
    log = warnings_path(b, base).with_suffix(".objects.log")
    work.w1 = objects.base_diagnostics(b, base, sources, log, w1=True)
    outside = [s for s in sources if (b.tree / s).is_file() and not (b.dir / s).with_suffix(".o").is_file()]
    if outside and not b.kasan_enabled:  # a build variant shares its base arch's (one build dir less)
        work.variant = Builder(config, b.spec.base, b.tree, kasan=True)
        conf = work.variant.configure(log)
        if conf is not None and not conf.ok:
            return None, _why("configuring the KASAN config at the base", conf, log)
        work.variant_diags = objects.base_diagnostics(work.variant, base, outside, log, w1=False)
    return work, ""


def warnings_path(b: Builder, base: str) -> Path:
    return b.cache / "build" / "warnings" / f"{b.arch}-{b.hash}-{base}-v{WARNINGS_FORMAT}.json"


def reproduce_command(b: Builder) -> str:
    """The same build for a developer's own tree (fragments from the bot's checkout), without the sandbox."""
    out = f"build-{b.arch}"
    make = f"make ARCH={b.spec.karch}" + (f" CROSS_COMPILE={b.cross}" if b.cross else "") + f" O={out}"
    frags = " ".join(f"bot/build/kconfig/{f.name}" for f in b.frags)
    return (f"{make} tinyconfig && ARCH={b.spec.srcarch} scripts/kconfig/merge_config.sh -m -O {out} "
            f"{out}/.config {frags} && {make} olddefconfig && {make} -j$(nproc) {b.spec.target}")


def base_image(b: Builder, base: str) -> Path:
    return warnings_path(b, base).with_suffix("." + Path(b.spec.image).name)


def base_diagnostics(config: Config, b: Builder, base: str) -> tuple[list[bw.Diagnostic] | None, str]:
    """The base's warnings for this arch+config, from the cache or from one full build of the base.

    Returns (diagnostics, "") or (None, why not). Leaves the tree checked out at `base` if it built.
    """
    path = warnings_path(b, base)
    if path.exists() and base_image(b, base).exists():  # an entry without the image predates it: rebuild
        data = json.loads(path.read_text())
        return [bw.Diagnostic.from_json(d) for d in data["diagnostics"]], ""
    repo.switch(config, base)
    log_path = path.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    conf = b.configure(log_path)
    if conf is not None and not conf.ok:
        return None, _why("configuring the base", conf, log_path)
    if dropped := b.dropped():
        return None, f"config dropped requested options: {', '.join(dropped)}"
    # A full log needs every object compiled: clean first (ccache makes this ~1 min when warm).
    run = b.build(log_path, [], clean=True)
    if not run.ok:
        return None, _why(f"building the base {base[:12]}", run, log_path)
    diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    shutil.copy2(b.image(), base_image(b, base))  # the boot stage may boot the base to tell old bugs from new
    write_json_atomic(path, {"base": base, "arch": b.arch, "config_hash": b.hash, "seconds": run.seconds,
                         "diagnostics": [d.to_json() for d in diags]})
    return diags, ""


def _why(what: str, run: MakeRun, log_path: Path) -> str:
    if run.timed_out:
        return f"{what}: timeout after {run.seconds:.0f}s (log: {log_path})"
    if run.oom:
        return f"{what}: memory limit hit (log: {log_path})"
    return f"{what} failed: {bw.first_error(bw.parse(run.output), run.output)} (log: {log_path})"
