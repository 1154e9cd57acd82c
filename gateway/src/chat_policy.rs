//! Membership rules of the four chat types, as pure functions so every
//! rule is testable without a database:
//!
//! * `single`: exactly two members, never with yourself; one per pair.
//! * `group`: at least three members including the creator.
//! * `private_channel`: the creator plus any invited members.
//! * `public_channel`: only the creator at first; others join themselves.
//! * a channel may be read-only (a broadcast channel): only its owner and
//!   admins post (`Role::may_post`, checked by the worker at commit).

use fechatter_shared::{
    model::{ChatType, Role},
    AppError, AppResult,
};

/// Most members one request may name.
pub const MAX_MEMBERS_PER_REQUEST: usize = 1000;
/// Longest chat description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A chat description as stored: trimmed, at most
/// [`MAX_DESCRIPTION_CHARS`]. (NUL, which PostgreSQL text cannot hold, is
/// refused in every REST body by `crate::extract::ApiJson`.)
pub fn description(requested: &str) -> AppResult<&str> {
    if requested.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(AppError::validation(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(requested.trim())
}

/// Validates the requested members of a new chat and returns the members
/// other than the creator, sorted and de-duplicated.
pub fn initial_members(
    creator: i64,
    chat_type: ChatType,
    requested: &[i64],
) -> AppResult<Vec<i64>> {
    if requested.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(AppError::validation(format!(
            "at most {MAX_MEMBERS_PER_REQUEST} members per request"
        )));
    }
    let mut others: Vec<i64> = requested
        .iter()
        .copied()
        .filter(|&id| id != creator)
        .collect();
    others.sort_unstable();
    others.dedup();
    match chat_type {
        ChatType::Single if others.is_empty() => Err(AppError::validation(
            "a single chat needs another member: you cannot create a single chat with yourself",
        )),
        ChatType::Single if others.len() > 1 => Err(AppError::validation(
            "a single chat has exactly two members",
        )),
        ChatType::Group if others.len() < 2 => Err(AppError::validation(
            "a group chat needs at least three members including you",
        )),
        ChatType::PublicChannel if !others.is_empty() => Err(AppError::validation(
            "a public channel starts with only its creator; others join it",
        )),
        _ => Ok(others),
    }
}

/// Validates the name of a new chat: required for channels, optional for
/// groups, ignored for single chats.
pub fn initial_name(chat_type: ChatType, name: Option<&str>) -> AppResult<Option<String>> {
    match (chat_type, name.map(str::trim)) {
        (ChatType::Single, _) => Ok(None),
        (t, None | Some("")) if t.is_channel() => {
            Err(AppError::validation("a channel needs a name"))
        }
        (_, None | Some("")) => Ok(None),
        (_, Some(n)) if n.chars().count() > 80 => {
            Err(AppError::validation("name must be at most 80 characters"))
        }
        (_, Some(n)) => Ok(Some(n.to_string())),
    }
}

/// May `role` (None: not a member) add members to a chat of `chat_type`?
pub fn may_add_members(chat_type: ChatType, role: Option<Role>) -> AppResult<()> {
    match (chat_type, role) {
        (ChatType::Single, _) => Err(AppError::validation(
            "members of a single chat cannot change",
        )),
        (_, None) => Err(AppError::forbidden("only members can add members")),
        (ChatType::PrivateChannel, Some(r)) if !r.can_manage() => Err(AppError::forbidden(
            "only the owner or an admin can invite to a private channel",
        )),
        _ => Ok(()),
    }
}

/// Checks a requested read-only flag (a broadcast channel: only its owner
/// and admins post, `Role::may_post`): only channels can be read-only.
pub fn read_only(chat_type: ChatType, requested: Option<bool>) -> AppResult<Option<bool>> {
    match requested {
        Some(true) if !chat_type.is_channel() => Err(AppError::validation(
            "only channels can be read-only (broadcast channels)",
        )),
        other => Ok(other),
    }
}

/// May `me` (with `role`) remove `targets` from a chat owned by `owner`?
pub fn may_remove_members(
    chat_type: ChatType,
    me: i64,
    role: Option<Role>,
    owner: i64,
    targets: &[i64],
) -> AppResult<()> {
    if chat_type == ChatType::Single {
        return Err(AppError::validation(
            "members of a single chat cannot change",
        ));
    }
    let Some(role) = role else {
        return Err(AppError::forbidden("only members can remove members"));
    };
    if targets.contains(&owner) {
        return Err(AppError::validation(
            "the owner cannot be removed; transfer ownership first",
        ));
    }
    if targets.iter().any(|&t| t != me) && !role.can_manage() {
        return Err(AppError::forbidden(
            "only the owner or an admin can remove other members",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChatType::*;

    #[test]
    fn descriptions() {
        assert_eq!(description("  shipping v1 ").unwrap(), "shipping v1");
        assert_eq!(description("").unwrap(), "");
        assert!(description(&"x".repeat(1000)).is_ok());
        let long = description(&"x".repeat(1001)).unwrap_err();
        assert_eq!(long.code(), "validation_failed");
    }

    #[test]
    fn single_chat_needs_exactly_one_other() {
        assert!(initial_members(1, Single, &[]).is_err());
        assert!(initial_members(1, Single, &[1]).is_err());
        assert!(initial_members(1, Single, &[2, 3]).is_err());
        assert_eq!(initial_members(1, Single, &[2, 1, 2]).unwrap(), vec![2]);
    }

    #[test]
    fn group_needs_three_including_creator() {
        assert!(initial_members(1, Group, &[2]).is_err());
        assert!(initial_members(1, Group, &[2, 2, 1]).is_err());
        assert_eq!(initial_members(1, Group, &[3, 2]).unwrap(), vec![2, 3]);
    }

    #[test]
    fn channels() {
        assert_eq!(
            initial_members(1, PrivateChannel, &[]).unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(initial_members(1, PrivateChannel, &[5]).unwrap(), vec![5]);
        assert!(initial_members(1, PublicChannel, &[5]).is_err());
        assert!(initial_name(PublicChannel, Some("  ")).is_err());
        assert_eq!(initial_name(Single, Some("x")).unwrap(), None);
        assert_eq!(initial_name(Group, Some(" g ")).unwrap(), Some("g".into()));
    }

    #[test]
    fn removal_rules() {
        let owner = 1;
        assert!(may_remove_members(Group, 2, Some(Role::Member), owner, &[2]).is_ok());
        assert!(may_remove_members(Group, 2, Some(Role::Member), owner, &[3]).is_err());
        assert!(may_remove_members(Group, 2, Some(Role::Admin), owner, &[3]).is_ok());
        assert!(may_remove_members(Group, 1, Some(Role::Owner), owner, &[1]).is_err());
        assert!(may_remove_members(Single, 1, Some(Role::Owner), owner, &[2]).is_err());
        assert!(may_remove_members(Group, 9, None, owner, &[9]).is_err());
    }

    #[test]
    fn only_channels_are_read_only() {
        assert!(read_only(Group, Some(true)).is_err());
        assert!(read_only(Single, Some(true)).is_err());
        assert_eq!(read_only(Group, Some(false)).unwrap(), Some(false));
        assert_eq!(read_only(PublicChannel, Some(true)).unwrap(), Some(true));
        assert_eq!(read_only(PrivateChannel, None).unwrap(), None);
    }

    #[test]
    fn read_only_channels_take_posts_from_managers() {
        assert!(Role::Member.may_post(false));
        assert!(!Role::Member.may_post(true));
        assert!(Role::Admin.may_post(true));
        assert!(Role::Owner.may_post(true));
    }

    #[test]
    fn add_rules() {
        assert!(may_add_members(Group, Some(Role::Member)).is_ok());
        assert!(may_add_members(PrivateChannel, Some(Role::Member)).is_err());
        assert!(may_add_members(PrivateChannel, Some(Role::Admin)).is_ok());
        assert!(may_add_members(PublicChannel, None).is_err());
        assert!(may_add_members(Single, Some(Role::Owner)).is_err());
    }
}
