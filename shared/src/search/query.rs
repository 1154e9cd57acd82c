//! The search box language: any text a user types, parsed into one typed
//! [`Query`].
//!
//! Why: backends need structure (SQL filters, full-text words), and every
//! backend must read the same meaning, so parsing lives here once and is
//! tested without a database. [`parse`] never fails (users never see a
//! syntax error; whatever is not a valid operator is searched as text) and
//! is pure (the caller passes today's UTC date).
//!
//! Rules, briefly:
//! - Input is cut to [`MAX_INPUT_CHARS`]; tokens split on whitespace; a `"`
//!   opens a phrase up to the next `"` (or the end). `-token` excludes each
//!   of its words, `-"a b"` the phrase; a lone `-` is nothing (`- "a b"`
//!   is the phrase `a b`). A pasted URL (`scheme://rest`) is searched
//!   without its scheme (the index has no word for it).
//! - Words: split on chars neither alphanumeric nor `. - _ @ /`, trimmed to
//!   alphanumeric ends, lowercased, cut to [`MAX_WORD_CHARS`]; so `'word'`
//!   is always safe inside `to_tsquery` text.
//! - Operators (`key:value`, key case-insensitive): `from:`/`mentions:`
//!   (`@name`, `name`, `me`, user id), `in:` (`#name`, `name`, chat id),
//!   `has:link(s)`, `has:mention(s)`, `before:D` (exclusive), `after:D`
//!   (from the next day), `on:D`, D being `YYYY-MM-DD`, `today` or
//!   `yesterday`. Invalid values and unknown keys (`http://x`) are text.
//! - Bare `today`, `yesterday`, `last week|month|year` (7/30/365 days)
//!   restrict the window instead of being words (quote them to search
//!   them). Date filters intersect; out-of-range dates are ignored.
//! - Duplicate words, phrases and filters are dropped (first kept, not
//!   counted); past [`MAX_WORDS`] / [`MAX_FILTERS`] the rest is ignored
//!   (a phrase keeps the words that fit).

use chrono::{Days, NaiveDate};

/// Longer input is cut at a char boundary before parsing.
pub const MAX_INPUT_CHARS: usize = 512;
/// Total of terms, phrase words and excluded words; the first ones are kept.
pub const MAX_WORDS: usize = 16;
/// A longer word is cut to its first chars.
pub const MAX_WORD_CHARS: usize = 64;
/// Total of `from`, `mentions` and `chats` entries; the first ones are kept.
pub const MAX_FILTERS: usize = 16;
/// The last word matches as a prefix only from this length on: `m` or
/// `th` as a prefix would match (and rank) most of the table.
pub const MIN_PREFIX_CHARS: usize = 3;

const MAX_NAME_CHARS: usize = 64;
const MAX_CHAT_NAME_CHARS: usize = 80;

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Free words (lowercase), in input order; backends match them as
    /// whole words, the last one as a prefix (the word being typed).
    pub terms: Vec<String>,
    /// "exact phrases": each phrase is its words in order (lowercase); a
    /// quoted text yielding no word is dropped.
    pub phrases: Vec<Vec<String>>,
    /// -excluded words (lowercase).
    pub excluded: Vec<String>,
    /// -"excluded phrases" of two or more words (one word joins `excluded`).
    pub excluded_phrases: Vec<Vec<String>>,
    /// `from:@name` / `from:name` / `from:me` / `from:@me` / `from:<digits>`
    /// (several = any of them)
    pub from: Vec<Person>,
    /// `mentions:@name` / `mentions:@me` / `mentions:<digits>`
    pub mentions: Vec<Person>,
    /// `in:#channel` / `in:channel` (Name, lowercased, without '#') or
    /// `in:<digits>` (Id) (several = any of them)
    pub chats: Vec<ChatRef>,
    /// has:link
    pub has_link: bool,
    /// has:mention (the message mentions anyone)
    pub has_mention: bool,
    /// Inclusive first UTC day of the window.
    pub since: Option<NaiveDate>,
    /// Exclusive end UTC day of the window (messages strictly before this
    /// day's start).
    pub until: Option<NaiveDate>,
}

/// A user named by `from:` or `mentions:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// The searching user.
    Me,
    /// A lowercase name (alphanumerics and `. - _`), resolved by the caller.
    Name(String),
    /// A user id.
    Id(i64),
}

/// A chat named by `in:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatRef {
    /// A lowercase chat name without `#`.
    Name(String),
    /// A chat id.
    Id(i64),
}

impl Query {
    /// True when no word, phrase or excluded word is present (filters only).
    pub fn is_text_free(&self) -> bool {
        self.terms.is_empty()
            && self.phrases.is_empty()
            && self.excluded.is_empty()
            && self.excluded_phrases.is_empty()
    }

    /// PostgreSQL `to_tsquery('simple', ...)` text for the positive part:
    /// terms as `'w'`, the last one as a prefix `'w':*` (the word being
    /// typed, as Meilisearch matches too), phrases as `('a' <-> 'b')` (one word: `'a'`), joined
    /// with ` & `, then ` & !'x'` per excluded word. None without a term or
    /// phrase. Safe only for words produced by [`parse`].
    pub fn tsquery(&self) -> Option<String> {
        let last = self.terms.len().saturating_sub(1);
        let mut parts: Vec<String> = self
            .terms
            .iter()
            .enumerate()
            .map(
                |(i, t)| match i == last && t.chars().count() >= MIN_PREFIX_CHARS {
                    true => format!("'{t}':*"),
                    false => format!("'{t}'"),
                },
            )
            .collect();
        parts.extend(self.phrases.iter().filter_map(|p| phrase_tsquery(p)));
        if parts.is_empty() {
            return None;
        }
        let mut out = parts.join(" & ");
        out.extend(self.excluded.iter().map(|w| format!(" & !'{w}'")));
        out.extend(
            self.excluded_phrases
                .iter()
                .filter_map(|p| phrase_tsquery(p))
                .map(|p| format!(" & !{p}")),
        );
        Some(out)
    }

    /// [`Query::tsquery`] without the exclusions: what relevance is ranked
    /// by (PostgreSQL ranks a query with `!` near zero).
    pub fn rank_tsquery(&self) -> Option<String> {
        Query {
            excluded: Vec::new(),
            excluded_phrases: Vec::new(),
            ..self.clone()
        }
        .tsquery()
    }

    /// `'x' | 'y'` of the excluded words, for `NOT (tsv @@ to_tsquery(...))`
    /// when there is no positive part. None without excluded words.
    pub fn excluded_tsquery(&self) -> Option<String> {
        let mut parts: Vec<String> = self.excluded.iter().map(|w| format!("'{w}'")).collect();
        parts.extend(
            self.excluded_phrases
                .iter()
                .filter_map(|p| phrase_tsquery(p)),
        );
        (!parts.is_empty()).then(|| parts.join(" | "))
    }

    /// True when the window is empty (since >= until): the backend can
    /// answer no results at once.
    pub fn empty_window(&self) -> bool {
        matches!((self.since, self.until), (Some(since), Some(until)) if since >= until)
    }
}

fn phrase_tsquery(words: &[String]) -> Option<String> {
    let mut quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    match quoted.len() {
        0 | 1 => quoted.pop(),
        _ => Some(format!("({})", quoted.join(" <-> "))),
    }
}

/// Parses `input` (any text) relative to `today` (UTC date supplied by the
/// caller, so the function is pure).
pub fn parse(input: &str, today: NaiveDate) -> Query {
    let input = match input.char_indices().nth(MAX_INPUT_CHARS) {
        Some((cut, _)) => &input[..cut],
        None => input,
    };
    let mut builder = Builder {
        today,
        ..Builder::default()
    };
    let mut tokens = tokenize(input).into_iter().peekable();
    while let Some(token) = tokens.next() {
        let text = match token {
            Token::Quoted(text) => {
                builder.add_phrase(text);
                continue;
            }
            Token::ExcludedQuoted(text) => {
                builder.add_excluded_phrase(text);
                continue;
            }
            Token::Bare(text) => text,
        };
        match tokens.peek().and_then(|next| last_span_days(text, *next)) {
            Some(days) => {
                tokens.next();
                builder.since_days_ago(days);
            }
            None => builder.add_bare(text),
        }
    }
    builder.query
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A whitespace-delimited piece (also ended by a `"`).
    Bare(&'a str),
    /// The inside of a quoted phrase.
    Quoted(&'a str),
    /// The inside of a quoted phrase right after a `-`: `-"a b"`.
    ExcludedQuoted(&'a str),
}

fn tokenize(input: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start();
        if let Some(body) = rest.strip_prefix("-\"") {
            let end = body.find('"').unwrap_or(body.len());
            tokens.push(Token::ExcludedQuoted(&body[..end]));
            rest = body.get(end + 1..).unwrap_or("");
        } else if let Some(body) = rest.strip_prefix('"') {
            let end = body.find('"').unwrap_or(body.len());
            tokens.push(Token::Quoted(&body[..end]));
            rest = body.get(end + 1..).unwrap_or("");
        } else if rest.is_empty() {
            return tokens;
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            tokens.push(Token::Bare(&rest[..end]));
            rest = &rest[end..];
        }
    }
}

/// Whether `c` may be part of a search word (see the module rules).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '/')
}

fn trim_to_alphanumeric(s: &str) -> &str {
    s.trim_matches(|c: char| !c.is_alphanumeric())
}

/// The words of a text piece (see the module rules).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !is_word_char(c))
        .filter_map(clean_word)
}

fn clean_word(piece: &str) -> Option<String> {
    // Lowercasing may add marks (`İ` -> `i̇`); drop them to keep the charset.
    let lower: String = trim_to_alphanumeric(piece)
        .to_lowercase()
        .chars()
        .filter(|&c| is_word_char(c))
        .take(MAX_WORD_CHARS)
        .collect();
    let word = trim_to_alphanumeric(&lower);
    (!word.is_empty()).then(|| word.to_owned())
}

/// Days covered by `last week` / `last month` / `last year`.
fn last_span_days(first: &str, second: Token<'_>) -> Option<u64> {
    let (Token::Bare(second), true) = (second, first.eq_ignore_ascii_case("last")) else {
        return None;
    };
    [("week", 7), ("month", 30), ("year", 365)]
        .into_iter()
        .find(|(unit, _)| second.eq_ignore_ascii_case(unit))
        .map(|(_, days)| days)
}

/// `today` / `yesterday`: outer None when `word` is neither, inner None
/// when the day is out of chrono's range.
fn relative_day(word: &str, today: NaiveDate) -> Option<Option<NaiveDate>> {
    match word.to_ascii_lowercase().as_str() {
        "today" => Some(Some(today)),
        "yesterday" => Some(today.pred_opt()),
        _ => None,
    }
}

/// Strict `YYYY-MM-DD`.
fn iso_date(value: &str) -> Option<NaiveDate> {
    let is_dash_at = |i: usize| i == 4 || i == 7;
    let shape_ok = value.len() == 10
        && (value.bytes().enumerate()).all(|(i, b)| is_dash_at(i) == (b == b'-'))
        && (value.bytes().enumerate()).all(|(i, b)| is_dash_at(i) || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year = value[..4].parse().ok()?;
    let month = value[5..7].parse().ok()?;
    let day = value[8..].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// A positive id when `value` is all ASCII digits; outer None otherwise.
fn numeric_id(value: &str) -> Option<Option<i64>> {
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| value.parse().ok().filter(|id| *id > 0))
}

/// `value` lowercased when it is 1..=`max` chars of alphanumerics and `. - _`.
fn plain_name(value: &str, max: usize) -> Option<String> {
    let lower = value.to_lowercase();
    let count = lower.chars().count();
    let valid = (1..=max).contains(&count)
        && lower
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    valid.then_some(lower)
}

fn person(value: &str) -> Option<Person> {
    let value = value.strip_prefix('@').unwrap_or(value);
    if value.eq_ignore_ascii_case("me") {
        return Some(Person::Me);
    }
    match numeric_id(value) {
        Some(id) => id.map(Person::Id),
        None => plain_name(value, MAX_NAME_CHARS).map(Person::Name),
    }
}

fn chat(value: &str) -> Option<ChatRef> {
    let value = value.strip_prefix('#').unwrap_or(value);
    match numeric_id(value) {
        Some(id) => id.map(ChatRef::Id),
        None => plain_name(value, MAX_CHAT_NAME_CHARS).map(ChatRef::Name),
    }
}

/// Pushes `item` unless already present or `used` reached `limit`.
fn push_limited<T: PartialEq>(list: &mut Vec<T>, used: &mut usize, limit: usize, item: T) {
    if *used < limit && !list.contains(&item) {
        list.push(item);
        *used += 1;
    }
}

#[derive(Default)]
struct Builder {
    query: Query,
    today: NaiveDate,
    words: usize,
    filters: usize,
}

impl Builder {
    fn add_bare(&mut self, text: &str) {
        if let Some(rest) = text.strip_prefix('-') {
            for word in words(rest) {
                push_limited(&mut self.query.excluded, &mut self.words, MAX_WORDS, word);
            }
        } else if let Some(day) = relative_day(text, self.today) {
            self.on(day);
        } else if let Some((_, rest)) = text.split_once("://") {
            // A pasted URL: its scheme is not indexed as a word.
            for word in words(rest) {
                push_limited(&mut self.query.terms, &mut self.words, MAX_WORDS, word);
            }
        } else if !self.try_operator(text) {
            for word in words(text) {
                push_limited(&mut self.query.terms, &mut self.words, MAX_WORDS, word);
            }
        }
    }

    fn add_excluded_phrase(&mut self, text: &str) {
        let budget = MAX_WORDS.saturating_sub(self.words);
        let mut phrase: Vec<String> = words(text).take(budget).collect();
        if phrase.len() == 1 {
            let word = phrase.remove(0);
            push_limited(&mut self.query.excluded, &mut self.words, MAX_WORDS, word);
        } else if !phrase.is_empty() && !self.query.excluded_phrases.contains(&phrase) {
            self.words += phrase.len();
            self.query.excluded_phrases.push(phrase);
        }
    }

    fn add_phrase(&mut self, text: &str) {
        let budget = MAX_WORDS.saturating_sub(self.words);
        let phrase: Vec<String> = words(text).take(budget).collect();
        if phrase.is_empty() || self.query.phrases.contains(&phrase) {
            return;
        }
        self.words += phrase.len();
        self.query.phrases.push(phrase);
    }

    /// Applies `text` as `key:value`; false when it is not a valid operator
    /// (so it is text). Filters beyond [`MAX_FILTERS`] are valid, ignored.
    fn try_operator(&mut self, text: &str) -> bool {
        let Some((key, value)) = text.split_once(':').filter(|(_, v)| !v.is_empty()) else {
            return false;
        };
        let (q, used) = (&mut self.query, &mut self.filters);
        match key.to_ascii_lowercase().as_str() {
            "from" => person(value)
                .map(|p| push_limited(&mut q.from, used, MAX_FILTERS, p))
                .is_some(),
            "mentions" => person(value)
                .map(|p| push_limited(&mut q.mentions, used, MAX_FILTERS, p))
                .is_some(),
            "in" => chat(value)
                .map(|c| push_limited(&mut q.chats, used, MAX_FILTERS, c))
                .is_some(),
            "has" => self.apply_has(value),
            key @ ("before" | "after" | "on") => self.apply_date(key, value),
            _ => false,
        }
    }

    fn apply_has(&mut self, value: &str) -> bool {
        match value.to_ascii_lowercase().as_str() {
            "link" | "links" => self.query.has_link = true,
            "mention" | "mentions" => self.query.has_mention = true,
            _ => return false,
        }
        true
    }

    fn apply_date(&mut self, key: &str, value: &str) -> bool {
        let day = relative_day(value, self.today).or_else(|| iso_date(value).map(Some));
        let Some(day) = day else {
            return false;
        };
        // A day out of chrono's range (inner None) ignores the filter.
        match key {
            "before" => self.restrict(None, day),
            "after" => self.restrict(day.and_then(|d| d.succ_opt()), None),
            _ => self.on(day),
        }
        true
    }

    /// Restricts the window to `day` (nothing when `day` is None).
    fn on(&mut self, day: Option<NaiveDate>) {
        if let Some(next) = day.and_then(|d| d.succ_opt()) {
            self.restrict(day, Some(next));
        }
    }

    fn since_days_ago(&mut self, days: u64) {
        self.restrict(self.today.checked_sub_days(Days::new(days)), None);
    }

    /// Intersects the window with `[since, until)` (None: unbounded).
    fn restrict(&mut self, since: Option<NaiveDate>, until: Option<NaiveDate>) {
        let q = &mut self.query;
        q.since = q.since.max(since);
        q.until = [q.until, until].into_iter().flatten().min();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn today() -> NaiveDate {
        day(2024, 5, 15)
    }

    fn p(input: &str) -> Query {
        parse(input, today())
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn name(n: &str) -> Person {
        Person::Name(n.to_string())
    }

    fn chat_name(n: &str) -> ChatRef {
        ChatRef::Name(n.to_string())
    }

    /// Asserts the terms of each input, and that nothing else was parsed
    /// besides words (no filter, no window).
    fn assert_terms(cases: &[(&str, &[&str])]) {
        for (input, expected) in cases {
            let q = p(input);
            let want = Query {
                terms: strings(expected),
                ..Query::default()
            };
            assert_eq!(q, want, "input {input:?}");
        }
    }

    #[test]
    fn seed_example() {
        let q = p("from:alice budget meeting last week");
        assert_eq!(q.from, vec![name("alice")]);
        assert_eq!(q.terms, strings(&["budget", "meeting"]));
        assert_eq!(q.since, Some(day(2024, 5, 8)));
        assert_eq!(q.until, None);
        assert!(q.phrases.is_empty() && q.excluded.is_empty());
    }

    #[test]
    fn empty_and_blank_input() {
        assert_eq!(p(""), Query::default());
        assert_eq!(p(" \t\n  "), Query::default());
        assert!(p("").is_text_free());
    }

    #[test]
    fn word_rule() {
        assert_terms(&[
            ("Budget,", &["budget"]),
            ("example.com", &["example.com"]),
            ("foo-bar", &["foo-bar"]),
            ("don't", &["don", "t"]),
            ("a:b", &["a", "b"]),
            ("-—-", &[]),
            ("...hello...", &["hello"]),
            ("(x&y|z)!", &["x", "y", "z"]),
            ("ada@acme.test", &["ada@acme.test"]),
            ("@ada", &["ada"]),
            ("a/b/c", &["a/b/c"]),
            ("snake_case", &["snake_case"]),
            ("Straße ÉCOLE", &["straße", "école"]),
            ("İstanbul", &["istanbul"]),
            ("日本語 テスト", &["日本語", "テスト"]),
            ("back\\slash", &["back", "slash"]),
        ]);
        assert_eq!(p("-—-"), Query::default());
    }

    #[test]
    fn unknown_operators_are_text() {
        assert_terms(&[
            ("foo:bar", &["foo", "bar"]),
            ("https://example.com/a", &["example.com/a"]),
            ("http://x", &["x"]),
            (":x", &["x"]),
            ("during:2024", &["during", "2024"]),
            ("from:", &["from"]),
            ("in:", &["in"]),
        ]);
    }

    #[test]
    fn phrases() {
        let q = p("\"Project Plan\" review");
        assert_eq!(q.phrases, vec![strings(&["project", "plan"])]);
        assert_eq!(q.terms, strings(&["review"]));

        let q = p("say\"hi there\"now");
        assert_eq!(q.terms, strings(&["say", "now"]));
        assert_eq!(q.phrases, vec![strings(&["hi", "there"])]);

        assert_eq!(
            p("\"unterminated phrase").phrases,
            vec![strings(&["unterminated", "phrase"])]
        );
        assert_eq!(
            p("\"don't stop\"").phrases,
            vec![strings(&["don", "t", "stop"])]
        );
        assert_eq!(p("\"\" \"!!!\" \"").phrases, Vec::<Vec<String>>::new());
        assert_eq!(p("\"\"").phrases, Vec::<Vec<String>>::new());
    }

    #[test]
    fn phrases_hide_operators_and_keywords() {
        let q = p("\"from:alice today\" \"last week\"");
        assert_eq!(
            q.phrases,
            vec![
                strings(&["from", "alice", "today"]),
                strings(&["last", "week"])
            ]
        );
        assert!(q.from.is_empty());
        assert_eq!((q.since, q.until), (None, None));
    }

    #[test]
    fn exclusions() {
        let q = p("-spam -foo,bar report");
        assert_eq!(q.excluded, strings(&["spam", "foo", "bar"]));
        assert_eq!(q.terms, strings(&["report"]));

        assert_eq!(p("-"), Query::default());
        assert_eq!(p("- budget").terms, strings(&["budget"]));
        assert_eq!(p("--x").excluded, strings(&["x"]));
        assert_eq!(p("-today").excluded, strings(&["today"]));
        assert_eq!(p("-today").since, None);

        let q = p("-from:alice");
        assert_eq!(q.excluded, strings(&["from", "alice"]));
        assert!(q.from.is_empty());

        // `-"a b"` excludes the phrase; `- "a b"` (a lone `-`) does not.
        let q = p("-\"a b\" c");
        assert_eq!(q.excluded_phrases, vec![strings(&["a", "b"])]);
        assert!(q.phrases.is_empty() && q.excluded.is_empty());
        assert_eq!(q.tsquery().as_deref(), Some("'c' & !('a' <-> 'b')"));
        assert_eq!(q.rank_tsquery().as_deref(), Some("'c'"));
        let q = p("-\"a b\"");
        assert_eq!(q.tsquery(), None);
        assert_eq!(q.excluded_tsquery().as_deref(), Some("('a' <-> 'b')"));
        assert!(!q.is_text_free());
        assert_eq!(p("-\"solo\"").excluded, strings(&["solo"]));
        let q = p("- \"a b\"");
        assert_eq!(q.phrases, vec![strings(&["a", "b"])]);
        assert!(q.excluded_phrases.is_empty());
    }

    #[test]
    fn pasted_urls_lose_their_scheme() {
        let q = p("https://example.com/report budget");
        assert_eq!(q.terms, strings(&["example.com/report", "budget"]));
        assert_eq!(p("-https://x.org").excluded, strings(&["https", "x.org"]));
    }

    #[test]
    fn from_operator() {
        let cases: &[(&str, Person)] = &[
            ("from:alice", name("alice")),
            ("from:@alice", name("alice")),
            ("FROM:Alice.Smith", name("alice.smith")),
            ("from:o_neil-2", name("o_neil-2")),
            ("from:José", name("josé")),
            ("from:me", Person::Me),
            ("from:@ME", Person::Me),
            ("from:42", Person::Id(42)),
            ("from:@42", Person::Id(42)),
            ("from:007", Person::Id(7)),
        ];
        for (input, want) in cases {
            let q = p(input);
            assert_eq!(q.from, vec![want.clone()], "input {input:?}");
            assert!(q.terms.is_empty(), "input {input:?}");
        }
        let long = "a".repeat(MAX_NAME_CHARS);
        assert_eq!(p(&format!("from:{long}")).from, vec![name(&long)]);
    }

    #[test]
    fn invalid_person_values_are_text() {
        let too_long = format!("from:{}", "a".repeat(MAX_NAME_CHARS + 1));
        assert_terms(&[
            ("from:0", &["from", "0"]),
            (
                "from:99999999999999999999",
                &["from", "99999999999999999999"],
            ),
            ("from:@", &["from"]),
            ("from:@@alice", &["from", "alice"]),
            ("from:a,b", &["from", "a", "b"]),
            ("from:a@b", &["from", "a@b"]),
            ("from:a/b", &["from", "a/b"]),
            ("mentions:#x", &["mentions", "x"]),
            (&too_long, &["from", &"a".repeat(MAX_WORD_CHARS)]),
        ]);
    }

    #[test]
    fn mentions_operator() {
        let q = p("mentions:@me mentions:@Bob mentions:7 mentions:carol");
        assert_eq!(
            q.mentions,
            vec![Person::Me, name("bob"), Person::Id(7), name("carol")]
        );
        assert!(q.from.is_empty() && q.terms.is_empty());
    }

    #[test]
    fn in_operator() {
        let q = p("in:#General in:random in:12 in:#dev.ops_team-1 in:#34");
        assert_eq!(
            q.chats,
            vec![
                chat_name("general"),
                chat_name("random"),
                ChatRef::Id(12),
                chat_name("dev.ops_team-1"),
                ChatRef::Id(34),
            ]
        );
        let long = "c".repeat(MAX_CHAT_NAME_CHARS);
        assert_eq!(p(&format!("in:{long}")).chats, vec![chat_name(&long)]);
        assert_terms(&[
            ("in:#", &["in"]),
            ("in:#a#b", &["in", "a", "b"]),
            ("in:0", &["in", "0"]),
            ("in:@team", &["in", "team"]),
            ("IN:me!", &["in", "me"]),
        ]);
        let too_long = p(&format!("in:{}", "c".repeat(MAX_CHAT_NAME_CHARS + 1)));
        assert!(too_long.chats.is_empty());
        assert_eq!(too_long.terms.len(), 2);
    }

    #[test]
    fn several_filters_and_duplicates() {
        let q = p("from:alice from:bob from:@alice in:#x in:X in:1 in:1");
        assert_eq!(q.from, vec![name("alice"), name("bob")]);
        assert_eq!(q.chats, vec![chat_name("x"), ChatRef::Id(1)]);
    }

    #[test]
    fn has_operator() {
        for input in ["has:link", "has:LINKS", "HAS:Link"] {
            let q = p(input);
            assert!(q.has_link && !q.has_mention, "input {input:?}");
            assert!(q.is_text_free());
        }
        for input in ["has:mention", "has:Mentions"] {
            let q = p(input);
            assert!(q.has_mention && !q.has_link, "input {input:?}");
        }
        assert_terms(&[
            ("has:file", &["has", "file"]),
            ("has:links!", &["has", "links"]),
        ]);
    }

    #[test]
    fn date_operators() {
        let cases: &[(&str, Option<NaiveDate>, Option<NaiveDate>)] = &[
            ("before:2024-03-01", None, Some(day(2024, 3, 1))),
            ("after:2024-03-01", Some(day(2024, 3, 2)), None),
            (
                "on:2024-02-29",
                Some(day(2024, 2, 29)),
                Some(day(2024, 3, 1)),
            ),
            (
                "ON:2023-12-31",
                Some(day(2023, 12, 31)),
                Some(day(2024, 1, 1)),
            ),
            ("on:today", Some(day(2024, 5, 15)), Some(day(2024, 5, 16))),
            (
                "on:Yesterday",
                Some(day(2024, 5, 14)),
                Some(day(2024, 5, 15)),
            ),
            ("before:today", None, Some(day(2024, 5, 15))),
            ("before:yesterday", None, Some(day(2024, 5, 14))),
            ("after:yesterday", Some(day(2024, 5, 15)), None),
            ("after:TODAY", Some(day(2024, 5, 16)), None),
        ];
        for (input, since, until) in cases {
            let q = p(input);
            assert_eq!((q.since, q.until), (*since, *until), "input {input:?}");
            assert!(q.is_text_free(), "input {input:?}");
        }
    }

    #[test]
    fn invalid_dates_are_text() {
        assert_terms(&[
            ("before:2024-02-30", &["before", "2024-02-30"]),
            ("before:2023-02-29", &["before", "2023-02-29"]),
            ("after:2024-3-1", &["after", "2024-3-1"]),
            ("on:24-03-01", &["on", "24-03-01"]),
            ("on:2024/03/01", &["on", "2024/03/01"]),
            ("on:+2024-03-01", &["on", "2024-03-01"]),
            (
                "before:2024-03-01T10:00",
                &["before", "2024-03-01t10", "00"],
            ),
            ("on:tomorrow", &["on", "tomorrow"]),
        ]);
    }

    #[test]
    fn date_filters_intersect() {
        let q = p("after:2024-01-01 before:2024-06-01 after:2024-02-01 before:2024-05-01");
        assert_eq!(q.since, Some(day(2024, 2, 2)));
        assert_eq!(q.until, Some(day(2024, 5, 1)));
        assert!(!q.empty_window());

        let q = p("after:2024-05-01 before:2024-05-01");
        assert_eq!(q.since, Some(day(2024, 5, 2)));
        assert!(q.empty_window());

        let q = p("on:2024-05-01 before:2024-05-02");
        assert_eq!(
            (q.since, q.until),
            (Some(day(2024, 5, 1)), Some(day(2024, 5, 2)))
        );
        assert!(!q.empty_window());

        assert!(p("today yesterday").empty_window());
        assert!(!p("after:2024-01-01").empty_window());
        assert!(!p("before:2024-01-01").empty_window());
    }

    #[test]
    fn relative_days_in_text() {
        let cases: &[(&str, Option<NaiveDate>, Option<NaiveDate>)] = &[
            ("today", Some(day(2024, 5, 15)), Some(day(2024, 5, 16))),
            ("Yesterday", Some(day(2024, 5, 14)), Some(day(2024, 5, 15))),
            ("last week", Some(day(2024, 5, 8)), None),
            ("Last Month", Some(day(2024, 4, 15)), None),
            // 2024 is a leap year: 365 days back is the 16th.
            ("LAST YEAR", Some(day(2023, 5, 16)), None),
            ("last month last week", Some(day(2024, 5, 8)), None),
        ];
        for (input, since, until) in cases {
            let q = p(input);
            assert_eq!((q.since, q.until), (*since, *until), "input {input:?}");
            assert!(q.is_text_free(), "input {input:?}");
        }
    }

    #[test]
    fn relative_words_that_stay_terms() {
        assert_terms(&[
            ("last", &["last"]),
            ("week", &["week"]),
            ("week last", &["week", "last"]),
            ("last week,", &["last", "week"]),
            ("today!", &["today"]),
            ("last days", &["last", "days"]),
        ]);
        let q = p("last last week");
        assert_eq!(q.terms, strings(&["last"]));
        assert_eq!(q.since, Some(day(2024, 5, 8)));

        let q = p("last \"week\"");
        assert_eq!(q.terms, strings(&["last"]));
        assert_eq!(q.phrases, vec![strings(&["week"])]);
        assert_eq!(q.since, None);

        let q = p("\"today\"");
        assert_eq!(q.phrases, vec![strings(&["today"])]);
        assert_eq!(q.since, None);
    }

    #[test]
    fn date_overflow_ignores_the_filter() {
        for input in ["yesterday", "last year", "before:yesterday", "on:yesterday"] {
            let q = parse(input, NaiveDate::MIN);
            assert_eq!(q, Query::default(), "input {input:?}");
        }
        for input in ["today", "after:today", "on:today"] {
            let q = parse(input, NaiveDate::MAX);
            assert_eq!(q, Query::default(), "input {input:?}");
        }
        let q = parse("before:today", NaiveDate::MAX);
        assert_eq!(q.until, Some(NaiveDate::MAX));
    }

    #[test]
    fn input_is_cut_at_max_chars() {
        let input = format!("{} bc", "a".repeat(MAX_INPUT_CHARS - 2));
        assert_eq!(input.chars().count(), MAX_INPUT_CHARS + 1);
        let q = p(&input);
        assert_eq!(q.terms, strings(&[&"a".repeat(MAX_WORD_CHARS), "b"]));

        let wide = "é".repeat(MAX_INPUT_CHARS * 2);
        assert_eq!(p(&wide).terms, strings(&[&"é".repeat(MAX_WORD_CHARS)]));
    }

    #[test]
    fn long_words_are_cut() {
        assert_eq!(
            p(&"A".repeat(100)).terms,
            strings(&[&"a".repeat(MAX_WORD_CHARS)])
        );
        // Cut, then trimmed again so the word still ends alphanumeric.
        let input = format!("{}.{}", "a".repeat(MAX_WORD_CHARS - 1), "b".repeat(10));
        assert_eq!(p(&input).terms, strings(&[&"a".repeat(MAX_WORD_CHARS - 1)]));
        // Trimmed before the cut: leading punctuation does not eat the budget.
        let input = format!("{}{}", "._".repeat(35), "x".repeat(10));
        assert_eq!(p(&input).terms, strings(&[&"x".repeat(10)]));
    }

    #[test]
    fn word_limit_keeps_the_first() {
        let input: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        let q = p(&input.join(" "));
        assert_eq!(q.terms, input[..MAX_WORDS].to_vec());

        // Excluded words and phrase words share the budget; a phrase keeps
        // the words that fit.
        let mut input: Vec<String> = (0..14).map(|i| format!("w{i}")).collect();
        input.push("-x".into());
        input.push("\"p q r\"".into());
        input.push("more".into());
        let q = p(&input.join(" "));
        assert_eq!(q.terms.len(), 14);
        assert_eq!(q.excluded, strings(&["x"]));
        assert_eq!(q.phrases, vec![strings(&["p"])]);
    }

    #[test]
    fn duplicates_are_dropped_and_free() {
        let q = p("budget Budget budget, -x -X \"a b\" \"A B\" \"a\"");
        assert_eq!(q.terms, strings(&["budget"]));
        assert_eq!(q.excluded, strings(&["x"]));
        assert_eq!(q.phrases, vec![strings(&["a", "b"]), strings(&["a"])]);

        let mut input = vec!["same"; 30];
        let distinct: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        input.extend(distinct.iter().map(String::as_str));
        let q = p(&input.join(" "));
        assert_eq!(q.terms.len(), MAX_WORDS);
        assert_eq!(q.terms[0], "same");
        assert_eq!(q.terms[1..], distinct[..MAX_WORDS - 1]);
    }

    #[test]
    fn filter_limit_keeps_the_first() {
        let from: Vec<String> = (1..=10).map(|i| format!("from:{i}")).collect();
        let chats: Vec<String> = (1..=10).map(|i| format!("in:{i}")).collect();
        let q = p(&format!("{} {} extra", from.join(" "), chats.join(" ")));
        assert_eq!(q.from.len(), 10);
        assert_eq!(q.chats, (1..=6).map(ChatRef::Id).collect::<Vec<_>>());
        // Filters beyond the limit are ignored, not searched as text.
        assert_eq!(q.terms, strings(&["extra"]));
    }

    #[test]
    fn tsquery_text() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("budget meeting", Some("'budget' & 'meeting':*"), None),
            (
                "\"project plan\" q3 -draft",
                Some("'q3' & ('project' <-> 'plan') & !'draft'"),
                Some("'draft'"),
            ),
            ("\"solo\"", Some("'solo'"), None),
            ("\"a b c\" \"d\"", Some("('a' <-> 'b' <-> 'c') & 'd'"), None),
            ("-spam -ham", None, Some("'spam' | 'ham'")),
            ("don't", Some("'don' & 't'"), None),
            ("budget mee", Some("'budget' & 'mee':*"), None),
            ("budget me", Some("'budget' & 'me'"), None),
            ("from:me has:link", None, None),
        ];
        for (input, positive, negative) in cases {
            let q = p(input);
            assert_eq!(q.tsquery().as_deref(), *positive, "input {input:?}");
            assert_eq!(
                q.excluded_tsquery().as_deref(),
                *negative,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn tsquery_skips_hand_built_empty_phrases() {
        let q = Query {
            phrases: vec![vec![]],
            ..Query::default()
        };
        assert_eq!(q.tsquery(), None);
    }

    #[test]
    fn is_text_free() {
        assert!(p("from:me in:#general today has:link").is_text_free());
        assert!(!p("-spam").is_text_free());
        assert!(!p("\"x\"").is_text_free());
        assert!(!p("x").is_text_free());
    }

    fn check_word(word: &str) {
        assert!(!word.is_empty());
        assert!(word.chars().count() <= MAX_WORD_CHARS, "{word:?}");
        assert_eq!(word, word.to_lowercase(), "{word:?}");
        assert!(word.chars().all(is_word_char), "{word:?}");
        let (first, last) = (word.chars().next(), word.chars().last());
        assert!(first.is_some_and(char::is_alphanumeric), "{word:?}");
        assert!(last.is_some_and(char::is_alphanumeric), "{word:?}");
    }

    fn check_tsquery_text(text: &str) {
        let allowed = |c: char| c.is_alphanumeric() || ".-_@/':*&!|()<> ".contains(c);
        assert!(text.chars().all(allowed), "{text:?}");
    }

    fn check_invariants(input: &str, today: NaiveDate) {
        let q = parse(input, today);
        assert_eq!(q, parse(input, today), "deterministic");
        let phrase_words: usize = q
            .phrases
            .iter()
            .chain(&q.excluded_phrases)
            .map(Vec::len)
            .sum();
        assert!(q.terms.len() + phrase_words + q.excluded.len() <= MAX_WORDS);
        assert!(q.excluded_phrases.iter().all(|p| p.len() >= 2));
        assert!(q.from.len() + q.mentions.len() + q.chats.len() <= MAX_FILTERS);
        assert!(q.phrases.iter().all(|p| !p.is_empty()));
        let all_words = q
            .terms
            .iter()
            .chain(q.phrases.iter().flatten())
            .chain(q.excluded_phrases.iter().flatten());
        all_words.chain(&q.excluded).for_each(|w| check_word(w));
        for person in q.from.iter().chain(&q.mentions) {
            match person {
                Person::Me => {}
                Person::Id(id) => assert!(*id > 0),
                Person::Name(n) => assert!(plain_name(n, MAX_NAME_CHARS).as_ref() == Some(n)),
            }
        }
        for chat in &q.chats {
            match chat {
                ChatRef::Id(id) => assert!(*id > 0),
                ChatRef::Name(n) => {
                    assert!(plain_name(n, MAX_CHAT_NAME_CHARS).as_ref() == Some(n))
                }
            }
        }
        let positive = q.tsquery();
        assert_eq!(
            positive.is_none(),
            q.terms.is_empty() && q.phrases.is_empty()
        );
        assert_eq!(
            q.excluded_tsquery().is_none(),
            q.excluded.is_empty() && q.excluded_phrases.is_empty()
        );
        positive
            .iter()
            .chain(&q.excluded_tsquery())
            .for_each(|t| check_tsquery_text(t));
        if let Some((cut, _)) = input.char_indices().nth(MAX_INPUT_CHARS) {
            assert_eq!(q, parse(&input[..cut], today));
        }
    }

    fn any_day() -> impl Strategy<Value = NaiveDate> {
        prop_oneof![
            Just(NaiveDate::MIN),
            Just(NaiveDate::MAX),
            (-262_000i32..262_000, 1u32..=365)
                .prop_map(|(y, d)| NaiveDate::from_yo_opt(y, d).unwrap()),
        ]
    }

    fn piece() -> impl Strategy<Value = String> {
        let fixed = prop::sample::select(vec![
            "from:",
            "mentions:",
            "in:",
            "has:",
            "before:",
            "after:",
            "on:",
            "FROM:",
            "@",
            "#",
            "-",
            "\"",
            "me",
            "link",
            "mentions",
            "last",
            "week",
            "month",
            "year",
            "today",
            "yesterday",
            "2024-02-29",
            "0000-01-01",
            "9999-12-31",
            "'",
            "\\",
            "&",
            "|",
            "!",
            "(",
            ")",
            ":",
            ":*",
            "<->",
            "İ",
            "ß",
            "Σ",
            "ﬁ",
            "\u{307}",
            "—",
            "https://",
            ".",
            "/",
            "_",
        ]);
        prop_oneof![
            fixed.prop_map(String::from),
            "[a-zA-Z0-9]{1,8}",
            "[0-9]{1,20}",
            any::<char>().prop_map(String::from),
            "\\PC{1,4}",
            "[a-z]{60,70}",
        ]
    }

    fn mixed_input() -> impl Strategy<Value = String> {
        let sep = prop::sample::select(vec!["", " ", " ", "\t", "\n", "\u{3000}"]);
        prop::collection::vec((piece(), sep), 0..60)
            .prop_map(|parts| parts.into_iter().map(|(piece, sep)| piece + sep).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_string_holds_invariants(input in any::<String>(), today in any_day()) {
            check_invariants(&input, today);
        }

        #[test]
        fn printable_string_holds_invariants(input in "\\PC{0,700}", today in any_day()) {
            check_invariants(&input, today);
        }

        #[test]
        fn mixed_input_holds_invariants(input in mixed_input(), today in any_day()) {
            check_invariants(&input, today);
        }

        #[test]
        fn plain_words_are_terms(words in prop::collection::vec("[a-k][a-k0-9]{0,9}", 0..10)) {
            // `[a-k]` cannot spell an operator key or a relative-day word.
            let q = p(&words.join(" "));
            let mut expected: Vec<String> = Vec::new();
            for w in words {
                if !expected.contains(&w) {
                    expected.push(w);
                }
            }
            prop_assert_eq!(q.terms, expected);
        }
    }
}
