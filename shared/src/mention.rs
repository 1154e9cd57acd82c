//! `@name` mentions in message text, resolved against a chat's members on
//! the server (the client's `mentions` list is only a hint, checked
//! against membership).
//!
//! A token is `@` followed by letters, digits, `.`, `_` or `-`, at the
//! start of the text or after a character that is none of those (so
//! `ada@acme.test` is not a mention). It names every member whose full
//! name without spaces, first name, or e-mail local part equals it,
//! ignoring case. `@channel` and `@all` name every member, `@here` every
//! member currently connected. The sender is never mentioned by their own
//! message.

use std::collections::BTreeSet;

/// A chat member as mentions see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: i64,
    pub fullname: String,
    pub email: String,
}

/// What the text asks for beyond named members.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub names: BTreeSet<String>,
    /// `@channel` / `@all`.
    pub everyone: bool,
    /// `@here`.
    pub here: bool,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The `@` tokens of `text`, lowercased (trailing `.`/`-` dropped, as in
/// "thanks @ada.").
pub fn tokens(text: &str) -> Tokens {
    let mut out = Tokens::default();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let starts = c == '@' && !prev.is_some_and(is_name_char) && prev != Some('@');
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[i + 1..];
        let end = rest
            .find(|ch: char| !is_name_char(ch))
            .unwrap_or(rest.len());
        let token = rest[..end].trim_end_matches(['.', '-']).to_lowercase();
        match token.as_str() {
            "" => {}
            "channel" | "all" | "everyone" => out.everyone = true,
            "here" => out.here = true,
            _ => {
                out.names.insert(token);
            }
        }
    }
    out
}

/// The keys a member answers to, lowercased.
fn keys(m: &Member) -> [String; 3] {
    let name = m.fullname.to_lowercase();
    [
        name.split_whitespace().collect::<String>(),
        name.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        m.email.split('@').next().unwrap_or_default().to_lowercase(),
    ]
}

/// The members `text` mentions: named ones, everyone for `@channel`, those
/// in `connected` for `@here`, plus the client's `hints` that are members;
/// never `sender`. Sorted, without duplicates.
pub fn resolve(
    text: &str,
    members: &[Member],
    connected: &dyn Fn(i64) -> bool,
    hints: &[i64],
    sender: i64,
) -> Vec<i64> {
    let t = tokens(text);
    let mut out = BTreeSet::new();
    for m in members {
        let named = keys(m).iter().any(|k| !k.is_empty() && t.names.contains(k));
        if named || t.everyone || (t.here && connected(m.user_id)) || hints.contains(&m.user_id) {
            out.insert(m.user_id);
        }
    }
    out.remove(&sender);
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(id: i64, name: &str, email: &str) -> Member {
        Member {
            user_id: id,
            fullname: name.into(),
            email: email.into(),
        }
    }

    #[test]
    fn names_channel_and_here() {
        let members = [
            m(1, "Ada Lovelace", "ada@acme.test"),
            m(2, "Bob Byte", "bobby@acme.test"),
            m(3, "Cy Coder", "cy@acme.test"),
        ];
        let none = |_| false;
        assert_eq!(resolve("hi @ada", &members, &none, &[], 9), vec![1]);
        assert_eq!(
            resolve("hi @AdaLovelace!", &members, &none, &[], 9),
            vec![1]
        );
        assert_eq!(
            resolve("ping @bobby, @cy.", &members, &none, &[], 9),
            vec![2, 3]
        );
        assert_eq!(
            resolve("mail ada@acme.test", &members, &none, &[], 9),
            Vec::<i64>::new()
        );
        assert_eq!(
            resolve("@nobody", &members, &none, &[], 9),
            Vec::<i64>::new()
        );
        assert_eq!(
            resolve("@channel ship it", &members, &none, &[], 1),
            vec![2, 3]
        );
        let online = |u| u == 3;
        assert_eq!(resolve("@here standup", &members, &online, &[], 1), vec![3]);
        assert_eq!(
            resolve("x", &members, &none, &[2, 77], 1),
            vec![2],
            "hints are checked"
        );
        assert_eq!(
            resolve("@ada", &members, &none, &[], 1),
            Vec::<i64>::new(),
            "not oneself"
        );
        assert_eq!(tokens("@@ada").names.len(), 0);
    }

    proptest! {
        #[test]
        fn any_text_resolves_without_panicking(text in ".{0,200}") {
            let members = [m(1, "Ada Lovelace", "ada@acme.test")];
            let r = resolve(&text, &members, &|_| true, &[], 2);
            prop_assert!(r.len() <= 1);
        }
    }
}
