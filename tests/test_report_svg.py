"""emergence/report/svg.py: per-layer charts leave the point markers out (the page stays small), a one-point line
keeps its marker so it still shows."""

from emergence.report import svg


def _series(n):
    return [{"label": "a", "color": "#000", "x": list(range(n)), "mean": [1.0 + i for i in range(n)], "seeds": []}]


def test_markers_only_where_asked_and_always_for_a_single_point():
    kw = {"title": "t", "xlabel": "x", "ylabel": "y"}
    assert svg.line_chart(_series(10), **kw).count("<circle") == 10
    assert svg.line_chart(_series(10), markers=False, **kw).count("<circle") == 0
    assert svg.line_chart(_series(1), markers=False, **kw).count("<circle") == 1
