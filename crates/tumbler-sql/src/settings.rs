//! Session settings for `SET`, `SHOW` and `RESET`.
//!
//! SQLite has no run-time parameters of the PostgreSQL kind, so a session stores the values
//! that clients set and reports fixed values for the parameters that drivers read.

use std::collections::BTreeMap;

use crate::error::QueryError;

/// PostgreSQL version that tumbler reports in `SHOW server_version` and `version()`.
///
/// Drivers parse it to select protocol features. tumbler speaks protocol 3.0 with the SQL of
/// SQLite, so the number only needs to be recent enough that drivers do not reject it.
pub const SERVER_VERSION: &str = "13.0";

/// `server_version_num` for [`SERVER_VERSION`].
const SERVER_VERSION_NUM: &str = "130000";

/// Returns the text of `SELECT version()`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (tumbler {}, SQLite {})",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    )
}

/// A known parameter: its PostgreSQL spelling, default value and description.
struct Known {
    name: &'static str,
    default: &'static str,
    description: &'static str,
}

const KNOWN: [Known; 17] = [
    known(
        "application_name",
        "",
        "Name that the client gave its connection.",
    ),
    known(
        "client_encoding",
        "UTF8",
        "Client character set; tumbler supports UTF8 only.",
    ),
    known(
        "DateStyle",
        "ISO, MDY",
        "Display format for date and time values.",
    ),
    known(
        "default_transaction_isolation",
        "serializable",
        "SQLite transactions are serializable.",
    ),
    known(
        "default_transaction_read_only",
        "off",
        "Transactions may write unless BEGIN READ ONLY.",
    ),
    known(
        "extra_float_digits",
        "1",
        "Float output uses the shortest exact representation.",
    ),
    known(
        "integer_datetimes",
        "on",
        "Date and time values are integers.",
    ),
    known(
        "IntervalStyle",
        "postgres",
        "Display format for interval values.",
    ),
    known(
        "max_identifier_length",
        "63",
        "Maximum identifier length that clients should assume.",
    ),
    known(
        "search_path",
        "public",
        "Schema search order; SQLite has a single schema.",
    ),
    known("server_encoding", "UTF8", "Database character set."),
    known(
        "server_version",
        SERVER_VERSION,
        "PostgreSQL version that tumbler reports.",
    ),
    known(
        "server_version_num",
        SERVER_VERSION_NUM,
        "server_version as an integer.",
    ),
    known(
        "standard_conforming_strings",
        "on",
        "Backslashes in string literals are literal.",
    ),
    known("TimeZone", "UTC", "Time zone for displaying time stamps."),
    known(
        "transaction_isolation",
        "serializable",
        "Isolation level of the transaction.",
    ),
    known(
        "transaction_read_only",
        "off",
        "Whether the transaction is read-only.",
    ),
];

const fn known(name: &'static str, default: &'static str, description: &'static str) -> Known {
    Known {
        name,
        default,
        description,
    }
}

fn find_known(name: &str) -> Option<&'static Known> {
    KNOWN
        .iter()
        .find(|known| known.name.eq_ignore_ascii_case(name))
}

/// Returns the column name of `SHOW name`: PostgreSQL's spelling for a known parameter, the
/// lowercase name otherwise.
pub(crate) fn show_column(name: &str) -> String {
    find_known(name).map_or_else(|| name.to_lowercase(), |known| known.name.to_owned())
}

/// One row of `SHOW ALL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettingRow {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) description: String,
}

/// Values that a session has set, keyed by lowercase name.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    values: BTreeMap<String, String>,
    startup: BTreeMap<String, String>,
}

impl Settings {
    /// Creates settings with the `application_name` that the client sent at startup.
    pub(crate) fn new(application_name: Option<String>) -> Self {
        let mut startup = BTreeMap::new();
        if let Some(name) = application_name {
            startup.insert("application_name".to_owned(), name);
        }
        Settings {
            values: BTreeMap::new(),
            startup,
        }
    }

    /// Stores `value` for `name`, or restores the default when `value` is `None`.
    ///
    /// # Errors
    ///
    /// Returns [`QueryError::InvalidSetting`] for values that tumbler cannot honour: a
    /// `client_encoding` other than UTF8, or `standard_conforming_strings` off.
    pub(crate) fn set(&mut self, name: &str, value: Option<String>) -> Result<(), QueryError> {
        let key = name.to_lowercase();
        let Some(value) = value else {
            self.values.remove(&key);
            return Ok(());
        };
        validate(&key, &value)?;
        self.values.insert(key, value);
        Ok(())
    }

    /// Restores the default of one setting, or of all when `name` is `None`.
    pub(crate) fn reset(&mut self, name: Option<&str>) {
        match name {
            Some(name) => {
                self.values.remove(&name.to_lowercase());
            }
            None => self.values.clear(),
        }
    }

    /// Returns the column name and value that `SHOW name` sends.
    ///
    /// # Errors
    ///
    /// Returns [`QueryError::UnknownSetting`] when the name is neither known nor set.
    pub(crate) fn show(&self, name: &str, read_only: bool) -> Result<(String, String), QueryError> {
        let key = name.to_lowercase();
        let known = find_known(&key);
        let column = show_column(&key);
        if let Some(value) = self.lookup(&key, read_only) {
            return Ok((column, value));
        }
        match known {
            Some(known) => Ok((column, known.default.to_owned())),
            None => Err(QueryError::UnknownSetting(key)),
        }
    }

    /// Returns the rows of `SHOW ALL`: every known parameter, then those that only the
    /// session has set.
    pub(crate) fn show_all(&self, read_only: bool) -> Vec<SettingRow> {
        let mut rows: Vec<SettingRow> = KNOWN
            .iter()
            .map(|known| SettingRow {
                name: known.name.to_owned(),
                value: self
                    .lookup(&known.name.to_lowercase(), read_only)
                    .unwrap_or_else(|| known.default.to_owned()),
                description: known.description.to_owned(),
            })
            .collect();
        let custom = self
            .values
            .iter()
            .filter(|(key, _)| find_known(key).is_none());
        rows.extend(custom.map(|(key, value)| SettingRow {
            name: key.clone(),
            value: value.clone(),
            description: "Set by this session.".to_owned(),
        }));
        rows
    }

    /// Returns the value that the session or its state determines, if any.
    fn lookup(&self, key: &str, read_only: bool) -> Option<String> {
        if key == "transaction_read_only" {
            return Some(if read_only { "on" } else { "off" }.to_owned());
        }
        self.values
            .get(key)
            .or_else(|| self.startup.get(key))
            .cloned()
    }
}

fn validate(key: &str, value: &str) -> Result<(), QueryError> {
    let reason = match key {
        "client_encoding" if !is_utf8_name(value) => "tumbler sends and expects UTF8 only",
        "standard_conforming_strings" if !is_on(value) => {
            "SQLite never treats backslashes in string literals as escapes"
        }
        _ => return Ok(()),
    };
    Err(QueryError::InvalidSetting {
        name: key.to_owned(),
        value: value.to_owned(),
        reason,
    })
}

fn is_utf8_name(value: &str) -> bool {
    ["UTF8", "UTF-8", "UNICODE"]
        .iter()
        .any(|name| value.eq_ignore_ascii_case(name))
}

fn is_on(value: &str) -> bool {
    ["on", "true", "yes", "1"]
        .iter()
        .any(|name| value.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_known_default() {
        let settings = Settings::default();
        let setting = settings.show("SERVER_VERSION", false).ok();
        assert_eq!(
            setting,
            Some(("server_version".to_owned(), SERVER_VERSION.to_owned()))
        );
    }

    #[test]
    fn show_value_set_by_session() {
        let mut settings = Settings::default();
        assert!(
            settings
                .set("DateStyle", Some("ISO, DMY".to_owned()))
                .is_ok()
        );
        let setting = settings
            .show("datestyle", false)
            .ok()
            .map(|(_, value)| value);
        assert_eq!(setting.as_deref(), Some("ISO, DMY"));
    }

    #[test]
    fn show_unknown_fails() {
        let error = Settings::default().show("no_such_setting", false).err();
        assert!(matches!(error, Some(QueryError::UnknownSetting(_))));
    }

    #[test]
    fn show_startup_application_name() {
        let settings = Settings::new(Some("psql".to_owned()));
        let setting = settings
            .show("application_name", false)
            .ok()
            .map(|(_, value)| value);
        assert_eq!(setting.as_deref(), Some("psql"));
    }

    #[test]
    fn reset_restores_default() {
        let mut settings = Settings::default();
        assert!(
            settings
                .set("timezone", Some("Europe/Paris".to_owned()))
                .is_ok()
        );
        settings.reset(Some("TimeZone"));
        let setting = settings
            .show("timezone", false)
            .ok()
            .map(|(_, value)| value);
        assert_eq!(setting.as_deref(), Some("UTC"));
    }

    #[test]
    fn set_rejects_latin1() {
        let mut settings = Settings::default();
        let result = settings.set("client_encoding", Some("LATIN1".to_owned()));
        assert!(matches!(result, Err(QueryError::InvalidSetting { .. })));
    }

    #[test]
    fn version_string_prefix() {
        assert!(version_string().starts_with("PostgreSQL 13.0 (tumbler "));
    }
}
