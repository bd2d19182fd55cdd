"""The build stage: each applied revision built for x86_64 and arm64, sandboxed, reporting only new warnings.

In: the applied branch and base (stages.apply, result.base). Out: stages.build.<arch> (BuildResult): the
image and config, the compiler, ccache hits, and the compiler warnings the revision adds, each with the
patch that introduced it; or the first error of a failed build.

  kconfig.py   tinyconfig + fragments (kconfig/*.config), their hash, the dropped-option check
  builder.py   one arch's build dir, make in the sandbox, ccache
  warnings.py  compiler diagnostics in a make log, and which are new
  base.py      the base's full build (cached warnings and image) and its single-object compiles
  objects.py   single-object compiles: W=1, and the KASAN config for files the booted config skips
  coverage.py  which touched files a build compiled, and why not the others
  stage.py     the revision's build, new warnings, attribution to patches
  warm.py      whether a base is built already (b4-check --prep builds only then)
"""

from bot.build.stage import run_stage
from bot.build.warm import warm

__all__ = ["run_stage", "warm"]
