"""The stage-times picture of a series: one stacked bar (build, then boot + stress) per revision and arch, as
geometry the SVG template draws. A template rather than a plotting library: a thousand series' plots must
render in well under the site's time budget, and the picture is a handful of rectangles."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.results import RevisionResult

LABEL_W, BAR_H, GAP, PLOT_W, TOP, RIGHT = 110, 14, 6, 420, 24, 90


@dataclass
class Segment:
    x: float
    width: float
    css: str  # build | boot
    title: str


@dataclass
class Bar:
    label: str
    y: int
    segments: list[Segment] = field(default_factory=list)
    text: str = ""  # "11 s + 14 s"


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, label)
    axis_y: int

    @property
    def empty(self) -> bool:
        return not self.bars


def _seconds(value: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def _fmt(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _tick_step(top: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if top / step <= 6:
            return float(step)
    return top / 6


def times_chart(revisions: list[RevisionResult], arches: list[str]) -> Chart:
    raw: list[tuple[str, float | None, float | None]] = []
    for r in revisions:
        for a in arches:
            build = r.stages.build.get(a)
            boot = r.stages.boot.get(a)
            b, t = _seconds(build.seconds if build else None), _seconds(boot.seconds if boot else None)
            if b is not None or t is not None:
                raw.append((f"v{r.version} {a}", b, t))
    top = max(((b or 0) + (t or 0) for _, b, t in raw), default=0.0) or 1.0
    scale = PLOT_W / top
    bars = []
    for i, (label, b, t) in enumerate(raw):
        bar = Bar(label, TOP + i * (BAR_H + GAP))
        x = float(LABEL_W)
        for css, value in (("build", b), ("boot", t)):
            if value is not None:
                bar.segments.append(Segment(x, max(value * scale, 1.0), css, f"{label} {css}: {_fmt(value)}"))
                x += value * scale
        bar.text = " + ".join(_fmt(v) for v in (b, t) if v is not None)
        bars.append(bar)
    step = _tick_step(top)
    ticks = [(LABEL_W + k * step * scale, f"{k * step:g} s") for k in range(int(top // step) + 1)]
    axis_y = TOP + len(bars) * (BAR_H + GAP)
    return Chart(LABEL_W + PLOT_W + RIGHT, axis_y + 20, bars, ticks, axis_y)
