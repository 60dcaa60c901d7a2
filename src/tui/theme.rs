//! Colour themes with semantic names (`ok`, `warn`, `paused` …), loaded from TOML.
//!
//! A theme file maps each name to a style written as words: colours (`red`, `dark_gray`,
//! `#rrggbb`, or an xterm palette number `0`–`255`), `on <colour>` for the background, and
//! emphasis (`bold`, `dim`, `italic`, `underlined`, `reversed`), e.g. `"bold black on yellow"`.
//! `parent = "dark"` (a bundled name or a path) supplies the keys a file leaves out; without a
//! parent they are plain (the `mono` style). Unknown keys are errors.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};

/// The bundled themes, compiled in so the binary works from anywhere.
const BUNDLED: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// The theme used when none is asked for.
pub const DEFAULT: &str = "dark";

/// How the screen is coloured, by meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Ordinary text.
    pub text: Style,
    /// Labels, units, timestamps, unknown values.
    pub muted: Style,
    /// Panel titles and headings.
    pub title: Style,
    /// Panel borders.
    pub border: Style,
    /// Borders of popups (what has the keyboard).
    pub border_focus: Style,
    /// The header bar (its background).
    pub header: Style,
    /// Healthy: running, done.
    pub ok: Style,
    /// Neutral news: preflight, a gate, autovacuum at work.
    pub info: Style,
    /// Needs a look: throttled, waiting for a lock, reconnecting, warnings.
    pub warn: Style,
    /// Failed, errors.
    pub critical: Style,
    /// Paused or pausing.
    pub paused: Style,
    /// The selected row.
    pub selection: Style,
    /// The progress gauge: filled part in the foreground, the rest in the background.
    pub gauge: Style,
    /// Keys in the key bar and the help overlay.
    pub key: Style,
    /// Chart series colours, by slot (empty: the terminal's own colour).
    pub chart: Vec<Color>,
}

/// Every key a theme file may hold, for error messages.
const KEYS: [&str; 16] = [
    "parent",
    "text",
    "muted",
    "title",
    "border",
    "border_focus",
    "header",
    "ok",
    "info",
    "warn",
    "critical",
    "paused",
    "selection",
    "gauge",
    "key",
    "chart",
];

impl Theme {
    /// No colours at all (NO_COLOR): emphasis only by bold, reverse and underline.
    pub fn mono() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            text: Style::new(),
            muted: Style::new(),
            title: bold,
            border: Style::new(),
            border_focus: bold,
            header: Style::new(),
            ok: bold,
            info: Style::new(),
            warn: bold,
            critical: bold.add_modifier(Modifier::UNDERLINED),
            paused: bold,
            selection: Style::new().add_modifier(Modifier::REVERSED),
            gauge: Style::new(),
            key: bold,
            chart: Vec::new(),
        }
    }

    /// A bundled theme by name (`dark`, `light`, `high-contrast`, `mono`) or a `.toml` file.
    pub fn load(name_or_path: &str) -> Result<Theme, String> {
        let mut seen = HashSet::new();
        load_source(&Source::resolve(name_or_path, None)?, &mut seen, 0)
    }

    /// The names of the bundled themes.
    pub fn bundled() -> impl Iterator<Item = &'static str> {
        BUNDLED.iter().map(|(name, _)| *name)
    }

    /// The colour of chart series `slot` (the terminal's colour when the palette is empty).
    pub fn series(&self, slot: usize) -> Color {
        if self.chart.is_empty() {
            Color::Reset
        } else {
            self.chart[slot % self.chart.len()]
        }
    }

    fn style_mut(&mut self, key: &str) -> Option<&mut Style> {
        Some(match key {
            "text" => &mut self.text,
            "muted" => &mut self.muted,
            "title" => &mut self.title,
            "border" => &mut self.border,
            "border_focus" => &mut self.border_focus,
            "header" => &mut self.header,
            "ok" => &mut self.ok,
            "info" => &mut self.info,
            "warn" => &mut self.warn,
            "critical" => &mut self.critical,
            "paused" => &mut self.paused,
            "selection" => &mut self.selection,
            "gauge" => &mut self.gauge,
            "key" => &mut self.key,
            _ => return None,
        })
    }
}

/// The theme to use: `NO_COLOR` wins over `--theme`, which wins over the default.
pub fn from_env(flag: Option<&str>, no_color: bool) -> Result<Theme, String> {
    if no_color {
        return Ok(Theme::mono());
    }
    Theme::load(flag.unwrap_or(DEFAULT))
}

/// Where a theme's text comes from.
enum Source {
    Bundled(&'static str, &'static str),
    File(PathBuf),
}

impl Source {
    /// A bundled name, else a path (relative to `dir`, the directory of the child theme file).
    fn resolve(name_or_path: &str, dir: Option<&Path>) -> Result<Source, String> {
        if let Some((name, text)) = BUNDLED.iter().find(|(name, _)| *name == name_or_path) {
            return Ok(Source::Bundled(name, text));
        }
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.contains('\\')
            || name_or_path.ends_with(".toml");
        if !looks_like_path {
            let names: Vec<&str> = Theme::bundled().collect();
            return Err(format!(
                "unknown theme `{name_or_path}`: use one of {} or a path to a .toml file",
                names.join(", ")
            ));
        }
        let path = Path::new(name_or_path);
        Ok(Source::File(match dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }))
    }

    fn describe(&self) -> String {
        match self {
            Source::Bundled(name, _) => format!("theme `{name}`"),
            Source::File(path) => format!("theme file {}", path.display()),
        }
    }
}

fn load_source(source: &Source, seen: &mut HashSet<String>, depth: usize) -> Result<Theme, String> {
    let what = source.describe();
    if depth > 8 || !seen.insert(what.clone()) {
        return Err(format!("{what}: its `parent` chain loops back to itself"));
    }
    let (text, dir) = match source {
        Source::Bundled(_, text) => ((*text).to_string(), None),
        Source::File(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("{what}: cannot read it: {e}"))?,
            path.parent().map(Path::to_path_buf),
        ),
    };
    parse_layered(&text, &what, |parent| {
        load_source(&Source::resolve(parent, dir.as_deref())?, seen, depth + 1)
    })
}

/// Parse one theme file's text over its parent (loaded on demand by `load_parent`).
fn parse_layered(
    text: &str,
    what: &str,
    load_parent: impl FnOnce(&str) -> Result<Theme, String>,
) -> Result<Theme, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("{what}: {e}"))?;
    let mut theme = match table.get("parent") {
        None => Theme::mono(),
        Some(toml::Value::String(parent)) => {
            load_parent(parent).map_err(|e| format!("{what}: parent `{parent}`: {e}"))?
        }
        Some(other) => {
            return Err(format!(
                "{what}: `parent` must be a string (a theme name or path), not {}",
                other.type_str()
            ));
        }
    };
    for (key, value) in &table {
        if key == "parent" {
            continue;
        }
        if key == "chart" {
            theme.chart = parse_palette(value).map_err(|e| format!("{what}: key `chart`: {e}"))?;
            continue;
        }
        let Some(slot) = theme.style_mut(key) else {
            return Err(format!(
                "{what}: unknown key `{key}` (known keys: {})",
                KEYS.join(", ")
            ));
        };
        let toml::Value::String(spec) = value else {
            return Err(format!(
                "{what}: key `{key}` must be a string such as \"bold yellow on black\", not {}",
                value.type_str()
            ));
        };
        *slot = parse_style(spec).map_err(|e| format!("{what}: key `{key}`: {e}"))?;
    }
    Ok(theme)
}

fn parse_palette(value: &toml::Value) -> Result<Vec<Color>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "must be an array of colours such as [\"cyan\", \"magenta\"], not {}",
            value.type_str()
        ));
    };
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(s) => parse_color(s),
            other => Err(format!(
                "each colour must be a string, not {}",
                other.type_str()
            )),
        })
        .collect()
}

/// A style in words: `[emphasis …] [colour] [on colour]`, e.g. `bold black on yellow`.
pub fn parse_style(spec: &str) -> Result<Style, String> {
    let mut style = Style::new();
    let mut words = spec.split_whitespace();
    let mut fg_set = false;
    while let Some(word) = words.next() {
        let modifier = match word.to_ascii_lowercase().as_str() {
            "plain" | "default" => Some(Modifier::empty()),
            "bold" => Some(Modifier::BOLD),
            "dim" => Some(Modifier::DIM),
            "italic" => Some(Modifier::ITALIC),
            "underlined" | "underline" => Some(Modifier::UNDERLINED),
            "reversed" | "reverse" => Some(Modifier::REVERSED),
            "crossed_out" => Some(Modifier::CROSSED_OUT),
            "on" => {
                let Some(bg) = words.next() else {
                    return Err(format!("`{spec}`: `on` must be followed by a colour"));
                };
                style = style.bg(parse_color(bg)?);
                None
            }
            _ => {
                if fg_set {
                    return Err(format!(
                        "`{spec}`: `{word}` is a second foreground colour (write `on {word}` for a background)"
                    ));
                }
                style = style.fg(parse_color(word)?);
                fg_set = true;
                None
            }
        };
        if let Some(m) = modifier {
            style = style.add_modifier(m);
        }
    }
    Ok(style)
}

/// A colour: a name (`red`, `dark_gray`, `reset`), `#rrggbb`, or an xterm palette index.
pub fn parse_color(word: &str) -> Result<Color, String> {
    let name = word.to_ascii_lowercase().replace(['-', ' '], "_");
    let color = match name.as_str() {
        "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "dark_gray" | "dark_grey" | "darkgray" => Color::DarkGray,
        "light_red" => Color::LightRed,
        "light_green" => Color::LightGreen,
        "light_yellow" => Color::LightYellow,
        "light_blue" => Color::LightBlue,
        "light_magenta" => Color::LightMagenta,
        "light_cyan" => Color::LightCyan,
        "white" => Color::White,
        _ => {
            if let Some(hex) = name.strip_prefix('#')
                && hex.len() == 6
                && hex.chars().all(|c| c.is_ascii_hexdigit())
            {
                let v = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)
            } else if let Ok(index) = name.parse::<u8>() {
                Color::Indexed(index)
            } else {
                return Err(format!(
                    "unknown colour `{word}` (use a name like red or dark_gray, #rrggbb, or 0–255)"
                ));
            }
        }
    };
    Ok(color)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_theme_loads() {
        for name in Theme::bundled() {
            let theme = Theme::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(theme.ok.fg.is_some(), name != "mono", "{name}");
        }
    }

    #[test]
    fn bundled_mono_is_the_no_colour_theme() {
        assert_eq!(Theme::load("mono").unwrap(), Theme::mono());
    }

    #[test]
    fn mono_has_no_colour_at_all() {
        let t = Theme::mono();
        let styles = [
            t.text,
            t.muted,
            t.title,
            t.border,
            t.border_focus,
            t.header,
            t.ok,
            t.info,
            t.warn,
            t.critical,
            t.paused,
            t.selection,
            t.gauge,
            t.key,
        ];
        for s in styles {
            assert_eq!((s.fg, s.bg), (None, None));
        }
        assert!(t.chart.is_empty());
    }

    #[test]
    fn high_contrast_inherits_what_it_leaves_out_from_dark() {
        let dark = Theme::load("dark").unwrap();
        let hc = Theme::load("high-contrast").unwrap();
        assert_eq!(hc.info, dark.info);
        assert_ne!(hc.critical, dark.critical);
    }

    #[test]
    fn a_file_inherits_from_its_parent_and_overrides_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, "parent = \"light\"\nok = \"bold #00ff00\"\n").unwrap();
        let theme = Theme::load(path.to_str().unwrap()).unwrap();
        let light = Theme::load("light").unwrap();
        assert_eq!(
            theme.ok,
            Style::new()
                .fg(Color::Rgb(0, 255, 0))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(theme.warn, light.warn);
        assert_eq!(theme.chart, light.chart);
    }

    #[test]
    fn a_parent_path_is_relative_to_the_child_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "warn = \"red\"\n").unwrap();
        let child = dir.path().join("child.toml");
        std::fs::write(&child, "parent = \"base.toml\"\nok = \"green\"\n").unwrap();
        let theme = Theme::load(child.to_str().unwrap()).unwrap();
        assert_eq!(theme.warn, Style::new().fg(Color::Red));
        assert_eq!(theme.ok, Style::new().fg(Color::Green));
        // Without a parent, what is left out is plain.
        assert_eq!(theme.text, Style::new());
    }

    #[test]
    fn a_parent_loop_is_an_error_not_a_stack_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        std::fs::write(&a, "parent = \"b.toml\"\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "parent = \"a.toml\"\n").unwrap();
        let err = Theme::load(a.to_str().unwrap()).unwrap_err();
        assert!(err.contains("loops"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name() {
        let err = parse_layered(
            "parent = \"dark\"\nokk = \"green\"\n",
            "theme file t.toml",
            Theme::load,
        )
        .unwrap_err();
        assert!(err.contains("unknown key `okk`"), "{err}");
        assert!(err.contains("t.toml"), "{err}");
        assert!(err.contains("border_focus"), "lists the known keys: {err}");
    }

    #[test]
    fn a_bad_colour_is_rejected_with_the_key_and_the_word() {
        let err =
            parse_layered("warn = \"bold yelow\"\n", "theme file t.toml", Theme::load).unwrap_err();
        assert!(err.contains("key `warn`"), "{err}");
        assert!(err.contains("unknown colour `yelow`"), "{err}");
        let err = parse_layered("chart = [\"cyan\", \"#12345\"]\n", "t", Theme::load).unwrap_err();
        assert!(err.contains("`#12345`"), "{err}");
    }

    #[test]
    fn an_unknown_theme_name_lists_the_bundled_ones() {
        let err = Theme::load("solarized").unwrap_err();
        assert!(err.contains("dark, light, high-contrast, mono"), "{err}");
    }

    #[test]
    fn styles_are_written_as_words() {
        assert_eq!(
            parse_style("bold black on #ffd700").unwrap(),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Rgb(0xff, 0xd7, 0))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(
            parse_style("on 236").unwrap(),
            Style::new().bg(Color::Indexed(236))
        );
        assert_eq!(
            parse_style("Dark-Gray").unwrap(),
            Style::new().fg(Color::DarkGray)
        );
        assert!(
            parse_style("red green")
                .unwrap_err()
                .contains("second foreground")
        );
        assert!(
            parse_style("bold on")
                .unwrap_err()
                .contains("followed by a colour")
        );
    }

    #[test]
    fn no_color_wins_over_the_flag() {
        assert_eq!(from_env(Some("light"), true).unwrap(), Theme::mono());
        assert_eq!(from_env(None, false).unwrap(), Theme::load("dark").unwrap());
        assert!(from_env(Some("nope"), false).is_err());
    }
}
