#!/usr/bin/env python3
"""Render a terminal capture with ANSI colours (SGR) onto a PNG image.

Used for the README screenshot of pacer's real terminal UI (demo/screenshot.png).

Usage:
    python3 demo/screenshot.py demo/screenshot.ansi demo/screenshot.png
    python3 demo/screenshot.py CAPTURE.ansi OUT.png [--font-size 15] [--font PATH] [--bold-font PATH]

Needs Python 3 and Pillow (`pip install pillow`), and the DejaVu fonts (Debian:
`apt-get install fonts-dejavu-core`): DejaVu Sans Mono for text, and DejaVu Sans for the
few glyphs the mono face lacks. They are found with `fc-match`, or in the usual DejaVu
paths, unless --font / --bold-font / --fallback-font name other files.

Reproducing the whole screenshot (from the repository root):

    cargo build --release
    tmux -L shot new-session -d -s s -x 160 -y 48 \\
        'target/release/pacer demo --rows 1000000; sleep 30'
    # Wait until the backfill has run about 12 s (poll the first line of
    # `tmux -L shot capture-pane -p -t s` for "RUNNING" and "elapsed 0:00:12"), then
    # double the demo workload so the log shows it:
    tmux -L shot send-keys -t s '>'
    # Capture at about "elapsed 0:00:25", with colours (-e) and trailing blanks kept (-N),
    # so that rows whose background reaches the right edge keep it:
    tmux -L shot capture-pane -e -p -N -t s > demo/screenshot.ansi
    # Quit the demo (it stops its PostgreSQL and removes its directory), then tmux:
    tmux -L shot send-keys -t s q; sleep 1; tmux -L shot send-keys -t s y; sleep 6
    tmux -L shot kill-server
    python3 demo/screenshot.py demo/screenshot.ansi demo/screenshot.png

How it draws: the capture is parsed into a grid of cells (character, foreground,
background, bold, dim, italic, underline, reverse). Every cell's background is filled,
then its character is drawn in its cell. Box-drawing lines (U+2500-257F), block
elements (U+2580-259F) and Braille patterns (U+2800-28FF, the chart lines) are drawn as
shapes sized to the cell, as kitty, foot or WezTerm do, so borders, bars and charts join
without gaps whatever the font's metrics (and DejaVu Sans Mono has no Braille glyphs).
All other characters come from the font, or from the fallback font when it lacks them.

Supported SGR codes: 0 reset, 1 bold, 2 dim, 3 italic, 4 underline, 7 reverse and
their resets (22, 23, 24, 27), foreground 30-37 / 90-97 / 39, background 40-47 / 100-107 /
49, 256-colour 38;5;n / 48;5;n and truecolour 38;2;r;g;b / 48;2;r;g;b (also with colons).
Other escape sequences are skipped.
"""

import argparse
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEFAULT_FG = (0xD0, 0xD0, 0xD0)
DEFAULT_BG = (0x1C, 0x1C, 0x1C)

# Colours 0-15 of a dark theme; 16-255 are the standard xterm cube and grey ramp.
BASE16 = [
    (0x3A, 0x3A, 0x3A),  # 0 black
    (0xE0, 0x55, 0x61),  # 1 red
    (0x8C, 0xC2, 0x65),  # 2 green
    (0xD1, 0x9A, 0x52),  # 3 yellow
    (0x4A, 0xA5, 0xF0),  # 4 blue
    (0xC1, 0x62, 0xDE),  # 5 magenta
    (0x42, 0xB3, 0xC2),  # 6 cyan
    (0xD0, 0xD0, 0xD0),  # 7 white
    (0x80, 0x84, 0x8C),  # 8 bright black (grey)
    (0xFF, 0x61, 0x6E),  # 9 bright red
    (0xA5, 0xE0, 0x75),  # 10 bright green
    (0xF0, 0xC0, 0x5D),  # 11 bright yellow
    (0x4D, 0xC4, 0xFF),  # 12 bright blue
    (0xDE, 0x73, 0xFF),  # 13 bright magenta
    (0x4C, 0xD1, 0xE0),  # 14 bright cyan
    (0xF2, 0xF2, 0xF2),  # 15 bright white
]


def palette_256(n):
    """The RGB colour of xterm 256-colour index n."""
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        levels = [0, 95, 135, 175, 215, 255]
        return (levels[n // 36], levels[(n // 6) % 6], levels[n % 6])
    grey = 8 + 10 * (n - 232)
    return (grey, grey, grey)


class Style:
    """The SGR state that applies to the next character written."""

    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline", "reverse")

    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None  # None: the default colour; else an (r, g, b) tuple
        self.bg = None
        self.bold = False
        self.dim = False
        self.italic = False
        self.underline = False
        self.reverse = False

    def copy(self):
        other = Style()
        for name in Style.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def apply_sgr(self, params):
        """Apply the parameters of one `ESC [ ... m` sequence."""
        codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = False
                self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = BASE16[c - 30]
            elif 90 <= c <= 97:
                self.fg = BASE16[c - 90 + 8]
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = BASE16[c - 40]
            elif 100 <= c <= 107:
                self.bg = BASE16[c - 100 + 8]
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                colour = None
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = palette_256(codes[i + 2] % 256)
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = tuple(min(v, 255) for v in codes[i + 2 : i + 5])
                    i += 4
                if colour is not None:
                    if c == 38:
                        self.fg = colour
                    else:
                        self.bg = colour
            i += 1

    def colours(self):
        """The (foreground, background) RGB pair this style paints with."""
        fg = self.fg or DEFAULT_FG
        bg = self.bg or DEFAULT_BG
        if self.reverse:
            fg, bg = bg, fg
        if self.dim:
            fg = tuple((f + b) // 2 for f, b in zip(fg, bg))
        return fg, bg


CSI = re.compile(r"\x1b\[([0-9;:?<=>]*)([ -/]*)([@-~])")
OTHER_ESCAPE = re.compile(r"\x1b(\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[@-Z\\-_])")


def char_width(ch):
    """How many terminal cells a character takes: 0, 1 or 2."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def parse(text):
    """Parse a capture into rows of cells; each cell is (char, Style) or None (right half of a wide char)."""
    rows = []
    style = Style()
    for line in text.split("\n"):
        row = []
        pos = 0
        while pos < len(line):
            ch = line[pos]
            if ch == "\x1b":
                m = CSI.match(line, pos)
                if m:
                    if m.group(3) == "m" and not m.group(2):
                        style.apply_sgr(m.group(1))
                    pos = m.end()
                    continue
                m = OTHER_ESCAPE.match(line, pos)
                pos = m.end() if m else pos + 1
                continue
            pos += 1
            if ch == "\r":
                continue
            if ch == "\t":
                for _ in range(8 - len(row) % 8):
                    row.append((" ", style.copy()))
                continue
            w = char_width(ch)
            if w == 0:
                continue
            row.append((ch, style.copy()))
            if w == 2:
                row.append(None)
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


# Box drawing: for each character, the weight (1 light, 2 heavy, 3 double) of its arm
# towards (left, right, up, down). Rounded corners (╭╮╯╰) get an arc instead: see draw_arc.
BOX = {}


def _box(chars, arms):
    for ch in chars:
        BOX[ch] = arms


_box("─", (1, 1, 0, 0))
_box("━", (2, 2, 0, 0))
_box("│", (0, 0, 1, 1))
_box("┃", (0, 0, 2, 2))
_box("┌╭", (0, 1, 0, 1))
_box("┐╮", (1, 0, 0, 1))
_box("└╰", (0, 1, 1, 0))
_box("┘╯", (1, 0, 1, 0))
_box("├", (0, 1, 1, 1))
_box("┤", (1, 0, 1, 1))
_box("┬", (1, 1, 0, 1))
_box("┴", (1, 1, 1, 0))
_box("┼", (1, 1, 1, 1))
_box("┏", (0, 2, 0, 2))
_box("┓", (2, 0, 0, 2))
_box("┗", (0, 2, 2, 0))
_box("┛", (2, 0, 2, 0))
_box("┣", (0, 2, 2, 2))
_box("┫", (2, 0, 2, 2))
_box("┳", (2, 2, 0, 2))
_box("┻", (2, 2, 2, 0))
_box("╋", (2, 2, 2, 2))
_box("═", (3, 3, 0, 0))
_box("║", (0, 0, 3, 3))
_box("╔", (0, 3, 0, 3))
_box("╗", (3, 0, 0, 3))
_box("╚", (0, 3, 3, 0))
_box("╝", (3, 0, 3, 0))
_box("╴", (1, 0, 0, 0))
_box("╶", (0, 1, 0, 0))
_box("╵", (0, 0, 1, 0))
_box("╷", (0, 0, 0, 1))


def draw_box(draw, ch, x, y, cw, chh, fg, light):
    """Draw a box-drawing character as rectangles filling its cell edge to edge."""
    left, right, up, down = BOX[ch]
    cx = x + (cw - light) // 2
    cy = y + (chh - light) // 2

    def thick(weight):
        return light * 2 if weight == 2 else light

    # Horizontal arms, then vertical arms; each reaches the centre line of the other axis.
    for weight, x0, x1 in ((left, x, cx + light), (right, cx, x + cw)):
        if not weight:
            continue
        if weight == 3:
            for off in (-light, light):
                draw.rectangle([x0, cy + off, x1 - 1, cy + off + light - 1], fill=fg)
        else:
            t = thick(weight)
            top = cy - (t - light) // 2
            draw.rectangle([x0, top, x1 - 1, top + t - 1], fill=fg)
    for weight, y0, y1 in ((up, y, cy + light), (down, cy, y + chh)):
        if not weight:
            continue
        if weight == 3:
            for off in (-light, light):
                draw.rectangle([cx + off, y0, cx + off + light - 1, y1 - 1], fill=fg)
        else:
            t = thick(weight)
            lft = cx - (t - light) // 2
            draw.rectangle([lft, y0, lft + t - 1, y1 - 1], fill=fg)


ARCS = {"╭": (1, 1), "╮": (-1, 1), "╯": (-1, -1), "╰": (1, -1)}  # direction of the (horizontal, vertical) arms


def draw_arc(img, ch, x, y, cw, chh, fg, light, cache):
    """Draw a rounded corner: its two arms meet in a quarter circle of radius half a cell."""
    mask = cache.get(ch)
    if mask is None:
        scale = 4
        dx, dy = ARCS[ch]
        big = Image.new("L", (cw * scale, chh * scale), 0)
        d = ImageDraw.Draw(big)
        t = light * scale
        cx = (cw - light) // 2 * scale  # left/top edge of the line, as draw_box places it
        cy = (chh - light) // 2 * scale
        r = cw * scale // 2
        mid_x, mid_y = cx + t / 2, cy + t / 2  # centre line of the arms
        ox = mid_x + dx * r  # centre of the arc
        oy = mid_y + dy * r
        # The arms, from the cell edge to where the arc starts (none when the arc reaches the edge).
        x0, x1 = (ox, cw * scale) if dx > 0 else (0, ox)
        if x1 > x0:
            d.rectangle([x0, cy, x1 - 1, cy + t - 1], fill=255)
        y0, y1 = (oy, chh * scale) if dy > 0 else (0, oy)
        if y1 > y0:
            d.rectangle([cx, y0, cx + t - 1, y1 - 1], fill=255)
        start = {(1, 1): 180, (-1, 1): 270, (-1, -1): 0, (1, -1): 90}[(dx, dy)]
        box = [ox - r - t / 2, oy - r - t / 2, ox + r + t / 2, oy + r + t / 2]
        d.arc(box, start, start + 90, fill=255, width=t)
        mask = big.resize((cw, chh), Image.LANCZOS)
        cache[ch] = mask
    img.paste(fg, (x, y, x + cw, y + chh), mask)


def draw_block(draw, ch, x, y, cw, chh, fg, bg):
    """Draw a block element (U+2580-259F) as filled parts of its cell; False if not one we know."""
    code = ord(ch)
    if code == 0x2580:  # upper half
        draw.rectangle([x, y, x + cw - 1, y + chh // 2 - 1], fill=fg)
    elif 0x2581 <= code <= 0x2588:  # lower 1/8 .. full block
        h = round(chh * (code - 0x2580) / 8)
        draw.rectangle([x, y + chh - h, x + cw - 1, y + chh - 1], fill=fg)
    elif 0x2589 <= code <= 0x258F:  # left 7/8 .. left 1/8
        w = round(cw * (0x2590 - code) / 8)
        draw.rectangle([x, y, x + w - 1, y + chh - 1], fill=fg)
    elif code == 0x2590:  # right half
        draw.rectangle([x + cw // 2, y, x + cw - 1, y + chh - 1], fill=fg)
    elif 0x2591 <= code <= 0x2593:  # light, medium, dark shade
        share = (code - 0x2590) / 4
        shade = tuple(round(b + (f - b) * share) for f, b in zip(fg, bg))
        draw.rectangle([x, y, x + cw - 1, y + chh - 1], fill=shade)
    elif code == 0x2594:  # upper 1/8
        draw.rectangle([x, y, x + cw - 1, y + max(1, chh // 8) - 1], fill=fg)
    elif code == 0x2595:  # right 1/8
        draw.rectangle([x + cw - max(1, cw // 8), y, x + cw - 1, y + chh - 1], fill=fg)
    else:
        return False
    return True


def draw_braille(img, ch, x, y, cw, chh, fg, cache):
    """Draw a Braille pattern as round dots on a 2x4 grid filling its cell."""
    bits = ord(ch) - 0x2800
    mask = cache.get(bits)
    if mask is None:
        scale = 4  # drawn large and scaled down, for smooth dots
        big = Image.new("L", (cw * scale, chh * scale), 0)
        d = ImageDraw.Draw(big)
        radius = min(cw / 2, chh / 4) * 0.32 * scale
        # Bit order of U+2800 + n: dots 1-3 down the left column, 4-6 down the right, then 7 and 8.
        dots = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3)]
        for bit, (col, row) in enumerate(dots):
            if bits & (1 << bit):
                cx = (col + 0.5) * cw * scale / 2
                cy = (row + 0.5) * chh * scale / 4
                d.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
        mask = big.resize((cw, chh), Image.LANCZOS)
        cache[bits] = mask
    img.paste(fg, (x, y, x + cw, y + chh), mask)


FONT_FILES = {
    "mono": ("DejaVu Sans Mono:style=Book", "DejaVuSansMono.ttf"),
    "mono-bold": ("DejaVu Sans Mono:style=Bold", "DejaVuSansMono-Bold.ttf"),
    "fallback": ("DejaVu Sans:style=Book", "DejaVuSans.ttf"),
}


def find_font(kind):
    """A DejaVu font file (kind: mono, mono-bold, fallback): fc-match first, then the usual paths."""
    pattern, name = FONT_FILES[kind]
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(
                ["fc-match", "-f", "%{file}", pattern],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if out and Path(out).name == name:
                return out
        except (OSError, subprocess.CalledProcessError):
            pass
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu"):
        path = Path(folder) / name
        if path.exists():
            return str(path)
    sys.exit(
        f"screenshot.py: font {name} not found; install the DejaVu fonts (Debian: "
        "apt-get install fonts-dejavu-core) or name a font file with --font, --bold-font, --fallback-font"
    )


def glyph_pixels(font, ch):
    """The pixels of one character drawn alone, to compare glyphs."""
    img = Image.new("L", (64, 64))
    ImageDraw.Draw(img).text((8, 8), ch, font=font, fill=255)
    return img.tobytes()


class Faces:
    """The fonts to draw with, and which characters need the fallback font."""

    def __init__(self, regular, bold, fallback):
        self.regular = regular
        self.bold = bold
        self.fallback = fallback
        self.missing_glyph = glyph_pixels(regular, "\U000f0000")  # a private-use char no font has
        self.known = {}

    def face(self, ch, bold):
        """The font that draws ch: the mono face if it has the glyph, else the fallback."""
        if ch not in self.known:
            self.known[ch] = glyph_pixels(self.regular, ch) != self.missing_glyph
        if self.known[ch]:
            return self.bold if bold else self.regular
        return self.fallback


def render(rows, faces, pad):
    """Paint the cell grid onto a new RGB image."""
    font = faces.regular
    cw = round(font.getlength("M"))
    ascent, descent = font.getmetrics()
    chh = ascent + descent
    cols = max((len(r) for r in rows), default=0)
    img = Image.new("RGB", (cols * cw + 2 * pad, len(rows) * chh + 2 * pad), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    light = max(1, round(chh / 16))
    braille_masks = {}
    arc_masks = {}

    for r, row in enumerate(rows):
        y = pad + r * chh
        for c, cell in enumerate(row):
            if cell is None:
                continue
            ch, style = cell
            fg, bg = style.colours()
            span = 2 if c + 1 < len(row) and row[c + 1] is None else 1
            x = pad + c * cw
            if bg != DEFAULT_BG:
                draw.rectangle([x, y, x + span * cw - 1, y + chh - 1], fill=bg)
            if ch == " ":
                pass
            elif ch in ARCS:
                draw_arc(img, ch, x, y, cw, chh, fg, light, arc_masks)
            elif ch in BOX:
                draw_box(draw, ch, x, y, cw, chh, fg, light)
            elif 0x2580 <= ord(ch) <= 0x259F and draw_block(draw, ch, x, y, cw, chh, fg, bg):
                pass
            elif 0x2800 <= ord(ch) <= 0x28FF:
                draw_braille(img, ch, x, y, cw, chh, fg, braille_masks)
            else:
                draw.text((x, y), ch, font=faces.face(ch, style.bold), fill=fg)
            if style.underline:
                draw.rectangle([x, y + ascent + 1, x + span * cw - 1, y + ascent + light], fill=fg)
    return img


def main():
    parser = argparse.ArgumentParser(description="Render an ANSI terminal capture onto a PNG image.")
    parser.add_argument("capture", help="text with ANSI SGR escapes, e.g. from `tmux capture-pane -e -p -N`")
    parser.add_argument("output", help="PNG file to write")
    parser.add_argument("--font-size", type=int, default=15, help="font size in pixels (default 15)")
    parser.add_argument("--font", help="regular monospace font file (default: DejaVu Sans Mono)")
    parser.add_argument("--bold-font", help="bold monospace font file (default: DejaVu Sans Mono Bold)")
    parser.add_argument("--fallback-font", help="font for glyphs the mono font lacks (default: DejaVu Sans)")
    parser.add_argument("--padding", type=int, default=12, help="margin around the grid in pixels (default 12)")
    args = parser.parse_args()

    text = Path(args.capture).read_text(encoding="utf-8")
    rows = parse(text)
    if not rows:
        sys.exit(f"screenshot.py: {args.capture} holds no text; capture the pane again")

    faces = Faces(
        ImageFont.truetype(args.font or find_font("mono"), args.font_size),
        ImageFont.truetype(args.bold_font or args.font or find_font("mono-bold"), args.font_size),
        ImageFont.truetype(args.fallback_font or find_font("fallback"), args.font_size),
    )
    img = render(rows, faces, args.padding)
    img.save(args.output, optimize=True)
    print(f"{args.output}: {img.width}x{img.height}, {len(rows)} rows, {Path(args.output).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
