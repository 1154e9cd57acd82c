//! Highlighted fragments of search results (seed §5.6:
//! `"...discussed the <mark>budget</mark> for..."`).
//!
//! Computed here, from the parsed query and the message text, rather than
//! by a backend: both backends then highlight the same words the same
//! way, and the output is safe to insert as HTML. Everything but the
//! `<mark>` tags is HTML-escaped, because message text is user input.
//! A word matches when it (or a part of it between `. - _ @ /`) equals a
//! search term or a word of a quoted phrase, or starts with the last
//! term: the same matching the PostgreSQL backend does.

use super::query::{is_word_char, Query, MIN_PREFIX_CHARS};

/// Most fragments per message.
pub const MAX_FRAGMENTS: usize = 3;
/// Characters of context kept on each side of a match.
const CONTEXT_CHARS: usize = 60;
/// How far a window edge may move to fall between words.
const SNAP_CHARS: usize = 15;

/// The highlighted fragments of `content`; empty when nothing matches.
pub fn fragments(content: &str, query: &Query) -> Vec<String> {
    let marks = matches(content, query);
    windows(content, &marks)
        .into_iter()
        .take(MAX_FRAGMENTS)
        .map(|(start, end)| render(content, start, end, &marks))
        .collect()
}

/// `text` with every match marked, or None when nothing matches (for
/// short fields such as a sender's name).
pub fn mark_all(text: &str, query: &Query) -> Option<String> {
    let marks = matches(text, query);
    (!marks.is_empty()).then(|| render(text, 0, text.len(), &marks))
}

/// `name` with every word starting with `prefix` marked (directory
/// searches match names by prefix, however short), or None.
pub fn mark_prefix(name: &str, prefix: &str) -> Option<String> {
    let prefix = prefix.to_lowercase();
    let marks = matching_words(name, &[prefix.as_str()], &[]);
    (!marks.is_empty() && !prefix.is_empty()).then(|| render(name, 0, name.len(), &marks))
}

/// Byte ranges of the words the query matches, in order.
fn matches(text: &str, query: &Query) -> Vec<(usize, usize)> {
    // The last term matches as a prefix (when long enough), the others
    // as whole words.
    let prefix_last = query
        .terms
        .last()
        .is_some_and(|t| t.chars().count() >= MIN_PREFIX_CHARS);
    let split = query.terms.len() - usize::from(prefix_last);
    let (whole, prefixes) = query.terms.split_at(split);
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let exact: Vec<&str> = whole
        .iter()
        .chain(query.phrases.iter().flatten())
        .map(String::as_str)
        .collect();
    matching_words(text, &prefixes, &exact)
}

/// Byte ranges of the words that start with one of `prefixes` or equal
/// one of `exact`.
fn matching_words(text: &str, prefixes: &[&str], exact: &[&str]) -> Vec<(usize, usize)> {
    if prefixes.is_empty() && exact.is_empty() {
        return Vec::new();
    }
    words(text)
        .filter(|&(s, e)| {
            // Lowercased as the parser does (`İ` -> `i`, marks dropped).
            let word: String = text[s..e]
                .to_lowercase()
                .chars()
                .filter(|&c| is_word_char(c))
                .collect();
            let parts = std::iter::once(word.as_str()).chain(word.split(['.', '-', '_', '@', '/']));
            parts
                .clone()
                .any(|p| prefixes.iter().any(|t| p.starts_with(t)))
                || parts.into_iter().any(|p| exact.contains(&p))
        })
        .collect()
}

/// Word spans: runs of word characters trimmed to alphanumeric ends.
fn words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (start, is_word_char(c) && i < text.len()) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                spans.push(trim(text, s, i));
                start = None;
            }
            _ => {}
        }
    }
    spans.into_iter().flatten()
}

fn trim(text: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    let piece = &text[s..e];
    let lead = piece.len()
        - piece
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .len();
    let kept = piece.trim_matches(|c: char| !c.is_alphanumeric());
    (!kept.is_empty()).then(|| (s + lead, s + lead + kept.len()))
}

/// Context windows around the matches, merged where they overlap.
fn windows(text: &str, marks: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in marks {
        let start = back(text, s, CONTEXT_CHARS);
        let end = forward(text, e, CONTEXT_CHARS);
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// A byte offset up to `chars` characters before `at`, moved forward to
/// the start of a word (when one starts within [`SNAP_CHARS`]) so
/// fragments do not begin mid-word.
fn back(text: &str, at: usize, chars: usize) -> usize {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    if start == 0 {
        return 0;
    }
    text[start..at]
        .char_indices()
        .take(SNAP_CHARS)
        .find(|(_, c)| c.is_whitespace())
        .map_or(start, |(i, c)| start + i + c.len_utf8())
}

/// A byte offset up to `chars` characters after `at`, moved back to the
/// end of a word.
fn forward(text: &str, at: usize, chars: usize) -> usize {
    let end = text[at..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| at + i);
    if end == text.len() {
        return end;
    }
    text[at..end]
        .char_indices()
        .rev()
        .take(SNAP_CHARS)
        .find(|(_, c)| c.is_whitespace())
        .map_or(end, |(i, _)| at + i)
}

fn render(text: &str, start: usize, end: usize, marks: &[(usize, usize)]) -> String {
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in marks.iter().filter(|(s, e)| *s >= start && *e <= end) {
        escape_into(&mut out, &text[at..s]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[s..e]);
        out.push_str("</mark>");
        at = e;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;
    use crate::search::parse;

    fn q(text: &str) -> Query {
        parse(text, NaiveDate::from_ymd_opt(2026, 11, 27).unwrap())
    }

    #[test]
    fn marks_prefixes_and_phrase_words() {
        assert_eq!(
            fragments("We discussed the Budget for Q3.", &q("budg")),
            ["We discussed the <mark>Budget</mark> for Q3."]
        );
        assert_eq!(
            fragments("the budget meeting, then budgets", &q("\"budget meeting\"")),
            ["the <mark>budget</mark> <mark>meeting</mark>, then budgets"]
        );
        assert_eq!(
            fragments("see example.com/a and foo-bar", &q("bar example")),
            ["see <mark>example.com/a</mark> and <mark>foo-bar</mark>"]
        );
        assert!(fragments("nothing here", &q("budget")).is_empty());
        assert!(fragments("anything", &q("from:me")).is_empty());
    }

    #[test]
    fn text_is_escaped_around_marks() {
        assert_eq!(
            fragments("<script>alert('x')</script> budget & co", &q("budget")),
            ["&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; <mark>budget</mark> &amp; co"]
        );
        assert_eq!(
            mark_all("Ada <b>", &q("ada")).unwrap(),
            "<mark>Ada</mark> &lt;b&gt;"
        );
        assert_eq!(mark_all("Bob", &q("ada")), None);
    }

    #[test]
    fn long_texts_give_windows_with_ellipses() {
        let filler = "lorem ipsum dolor sit amet ".repeat(10);
        let text = format!("{filler}budget {filler}budget {filler}");
        let got = fragments(&text, &q("budget"));
        assert_eq!(got.len(), 2, "{got:?}");
        for f in &got {
            assert!(f.starts_with('…') && f.ends_with('…'), "{f}");
            assert!(f.contains("<mark>budget</mark>"));
            assert!(f.chars().count() < 2 * CONTEXT_CHARS + 30, "{f}");
        }
        let many = "budget ".repeat(100) + &filler.repeat(3);
        assert!(fragments(&many, &q("budget")).len() <= MAX_FRAGMENTS);
    }

    #[test]
    fn context_survives_long_runs_without_spaces() {
        let text = format!("{} needle {}", "‹".repeat(100), "&".repeat(100));
        let got = fragments(&text, &q("needle"));
        assert!(
            got[0].contains("‹‹‹‹ <mark>needle</mark> &amp;&amp;"),
            "{got:?}"
        );
        assert_eq!(
            fragments("İstanbul trip", &q("istanbul")),
            ["<mark>İstanbul</mark> trip"]
        );
    }

    proptest! {
        #[test]
        fn any_text_highlights_safely(text in "\\PC{0,300}", query in "\\PC{0,40}") {
            let query = q(&query);
            for f in fragments(&text, &query) {
                let stripped = f.replace("<mark>", "").replace("</mark>", "");
                prop_assert!(!stripped.contains('<') && !stripped.contains('>'), "{}", f);
            }
        }
    }
}
