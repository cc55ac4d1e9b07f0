"""`cra stats --html`: a self-contained page whose charts a real browser renders. Checked in
headless Chromium (scripts/setup_chromium.sh installs it): the DOM it builds has the charts, and
its screenshot shows them."""

import re
import shutil
import struct
import subprocess
import zlib
from html import escape
from pathlib import Path

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.db import open_db
from cra.report.html import PALETTE, render
from cra.report.stats import compute

CHARTS = ("chart-timeline", "chart-sequences", "chart-depth", "chart-workflows", "chart-failures")


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium not found: run scripts/setup_chromium.sh (apt-get install chromium) to render the report")


def run_chromium(binary, tmp_path, *args):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=180)


@pytest.fixture
def report(recorded_db, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["stats", "-d", str(recorded_db), "--html", str(out)], catch_exceptions=False)
    assert result.exit_code == 0 and f"HTML report: {out}" in result.output
    return out


def svg_rects(html, chart_id):
    m = re.search(r'<svg[^>]*id="%s"[^>]*>(.*?)</svg>' % chart_id, html, re.S)
    assert m, f"no <svg id={chart_id}>"
    return len(re.findall(r"<rect\b", m.group(1)))


def test_report_is_self_contained(report):
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    for chart in CHARTS:
        assert svg_rects(html, chart) > 0, chart
    # The depth histogram: one column per depth (minimal, moderate, thorough, exhaustive).
    assert svg_rects(html, "chart-depth") == 4
    assert "[Bash|Glob|Grep|Read*2]" in html


def test_report_has_the_text_reports_sections_and_words(report, recorded_db):
    """The page and `cra stats` agree: outcomes, reasoning, and errored/denied calls named alike."""
    from cra.report.text import CALL_LEGEND, reasoning_line

    html = report.read_text(encoding="utf-8")
    stats = compute(open_db(str(recorded_db), drain=False))
    assert "Outcomes and reasoning" in html and reasoning_line(stats["reasoning"]) in html
    assert escape(CALL_LEGEND) in html
    for outcome, turns in stats["outcomes"].items():
        assert f'<td>{outcome}</td><td class="n">{turns}</td>' in html
    # Denied calls are marked on the bars, not only errored ones.
    denied = sum(r["denied"] for r in stats["tools"])
    assert denied and html.count('class="denied"') == sum(1 for r in stats["tools"][:12] if r["denied"])


def test_report_escapes_what_it_shows(tmp_path):
    stats = compute(open_db(str(tmp_path / "x.db"), drain=False))
    stats["sequences"] = [{"pattern": "<script>alert(1)</script>", "turns": 1}]
    html = render(stats)
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.slow
def test_chromium_renders_the_charts(report, tmp_path):
    binary = chromium()
    url = report.resolve().as_uri()
    dom = run_chromium(binary, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for chart in CHARTS:
        assert svg_rects(dom.stdout, chart) > 0, f"{chart} missing from the DOM Chromium built"
    shot = tmp_path / "report.png"
    result = run_chromium(binary, tmp_path, f"--screenshot={shot}", "--window-size=1100,2200", url)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    width, height, pixels = read_png(shot)
    assert (width, height) == (1100, 2200)
    non_white = sum(1 for p in pixels if p != (255, 255, 255))
    assert non_white > 0.03 * len(pixels), "the screenshot is (almost) blank"
    # The bars are there in the palette's colours, not just text.
    counts = {}
    for p in pixels:
        counts[p] = counts.get(p, 0) + 1
    bar_colors = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in PALETTE[:3]]
    for color in bar_colors:
        assert counts.get(color, 0) > 200, f"too few pixels of bar colour {color}"


def read_png(path: Path):
    """Pixels of an 8-bit RGB(A) PNG as (r, g, b) tuples: enough to tell a chart from a blank page."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color_type = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color_type in (2, 6), (depth, color_type)
            bpp = 3 if color_type == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    pixels = [tuple(row[x * bpp : x * bpp + 3]) for row in rows for x in range(width)]
    return width, height, pixels
