//! Text fitted to a width: cut, wrapped, flowed. (Numbers, sizes and durations are
//! [`crate::format`]'s.)

use ratatui::text::{Line, Span};

/// Display width of text in terminal cells.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    width(c.encode_utf8(&mut buf))
}

/// Cut `s` to `max` cells, ending with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Split off the longest head of `s` that fits `max` cells (at least one character).
fn split_at_width(s: &str, max: usize) -> (&str, &str) {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = char_width(c);
        if used + w > max && i > 0 {
            return (&s[..i], &s[i..]);
        }
        used += w;
    }
    (s, "")
}

/// Word-wrap `text` to `max` cells per line, keeping its line breaks and (some) indentation;
/// words longer than a line are split.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    if max == 0 {
        return lines;
    }
    for source in text.lines() {
        let body = source.trim_start_matches(' ');
        let indent = (source.len() - body.len()).min(max / 2);
        let mut line = " ".repeat(indent);
        let mut used = indent;
        let mut has_words = false;
        for word in body.split(' ').filter(|w| !w.is_empty()) {
            let w = width(word);
            let need = if has_words { w + 1 } else { w };
            if used + need <= max {
                if has_words {
                    line.push(' ');
                }
                line.push_str(word);
                used += need;
                has_words = true;
                continue;
            }
            if has_words {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            let mut rest = word;
            loop {
                let (head, tail) = split_at_width(rest, max - used);
                line.push_str(head);
                used += width(head);
                has_words = true;
                if tail.is_empty() {
                    break;
                }
                lines.push(std::mem::take(&mut line));
                used = 0;
                rest = tail;
            }
        }
        lines.push(line);
    }
    lines
}

/// All whitespace runs (line breaks included) as single spaces.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One figure: a few styled spans that stay together on a line.
pub type Item = Vec<Span<'static>>;

/// Lay out groups of items as lines of at most `max` cells: each group starts a new line and
/// its items flow onto further lines, separated by `sep`.
pub fn flow(groups: Vec<Vec<Item>>, max: usize, sep: &'static str) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let sep_w = width(sep);
    for group in groups {
        let mut spans: Vec<Span<'static>> = Vec::new();
        let mut used = 0;
        for item in group {
            let w: usize = item.iter().map(Span::width).sum();
            if !spans.is_empty() && used + sep_w + w > max {
                lines.push(Line::from(std::mem::take(&mut spans)));
                used = 0;
            }
            if !spans.is_empty() {
                spans.push(Span::raw(sep));
                used += sep_w;
            }
            spans.extend(item);
            used += w;
        }
        if !spans.is_empty() {
            lines.push(Line::from(spans));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_with_an_ellipsis_and_wrapped_at_words() {
        assert_eq!(truncate("public.orders", 8), "public.…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(
            wrap("UPDATE public.orders SET amount = 1", 14),
            ["UPDATE", "public.orders", "SET amount = 1"]
        );
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\n\n  b c", 10), ["a", "", "  b c"]);
        assert!(wrap("x", 0).is_empty());
    }
}
