//! `GET /api/v1/config`: the config file the gateway runs, read-only, its secrets masked —
//! what the console's config page shows.
//!
//! The file is read when asked, not kept: a 100,000-tag config is megabytes. Its digest
//! says whether it is still what runs (an edited file waits for a reload). One read at a
//! time, so that viewers cannot pile up copies of a large file.
//!
//! Masking works on the parsed document, not on the look of the text: every scalar under
//! a key naming a secret (aliases followed, escapes resolved, block scalars included) is
//! replaced wherever its text stands in the file. A file that does not parse is not shown
//! at all.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::config::sha256_hex;
use crate::web::auth::Caller;
use crate::web::Web;

/// A larger file is not shown.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// One config read at a time.
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Keys ending in one of these have their values masked (`password`, `key_password`, but
/// not `password_file`: a file's path is no secret, and the engineer wants to see it).
const SECRET_KEYS: [&str; 4] = ["password", "secret", "token", "private_key"];

#[derive(Serialize, ToSchema)]
pub struct ConfigFile {
    pub file: String,
    /// SHA-256 of the file as it is on disk now.
    pub sha256: String,
    /// The file on disk is the config that runs; false when it was edited since and not
    /// reloaded yet (or the edit was refused: see `/api/v1/status`).
    pub running: bool,
    /// The YAML, with the values of keys naming a password, secret or token masked.
    pub text: String,
}

/// The config file, secrets masked.
#[utoipa::path(get, path = "/api/v1/config", tag = "gateway",
    responses(
        (status = 200, body = ConfigFile, description = "OK"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "The file is gone since it was loaded"),
        (status = 503, body = ApiError, description = "The file cannot be read now"),
    ))]
pub(crate) async fn get_config(
    State(web): State<Web>,
    _caller: Caller,
) -> Result<Json<ConfigFile>, ApiError> {
    let _one = READS
        .acquire()
        .await
        .map_err(|e| unreadable(&e.to_string()))?;
    let gateway = web.handle.status().gateway();
    let path = gateway.config_file.clone();
    let (sha256, text) = tokio::task::spawn_blocking(move || {
        let text = read(&path)?;
        let masked = mask_parsed(&path, &text)?;
        Ok::<_, ApiError>((sha256_hex(text.as_bytes()), masked))
    })
    .await
    .map_err(|e| unreadable(&e.to_string()))??;
    Ok(Json(ConfigFile {
        running: sha256 == gateway.config_sha256,
        file: gateway.config_file,
        sha256,
        text,
    }))
}

fn read(path: &str) -> Result<String, ApiError> {
    let failed = |e: std::io::Error| match e.kind() {
        // Moved or deleted since it was loaded: what runs is still known by its digest.
        std::io::ErrorKind::NotFound => ApiError::not_found(format!(
            "{path} is gone since the gateway loaded it; /api/v1/status has its digest"
        )),
        _ => unreadable(&format!("{path}: {e}")),
    };
    let size = std::fs::metadata(path).map_err(failed)?.len();
    if size > MAX_FILE {
        return Err(unreadable(&format!(
            "{path} is {size} bytes, more than {MAX_FILE}"
        )));
    }
    std::fs::read_to_string(path).map_err(failed)
}

fn unreadable(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "config_unreadable",
        format!("the config file cannot be read: {why}"),
    )
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| key.ends_with(k))
}

/// The text with every secret masked (see the module's notes); an error when it does not
/// parse, since then what is a secret cannot be told.
fn mask_parsed(file: &str, text: &str) -> Result<String, ApiError> {
    let doc = crate::config::yaml::Document::parse(file, text).map_err(|e| {
        unreadable(&format!(
            "it does not parse ({e}), so its secrets cannot be told apart; `uaedge check` says more"
        ))
    })?;
    let mut out = text.to_string();
    for secret in doc.root().scalars_under_keys(&is_secret_key) {
        for form in written_forms(&secret) {
            out = replace_tokens(&out, &form);
        }
    }
    Ok(out)
}

/// How a parsed value may stand in the file: as it is, escaped within double quotes,
/// with its single quotes doubled, and each line of a multi-line value on its own.
fn written_forms(value: &str) -> Vec<String> {
    let mut forms: Vec<String> = vec![value.to_string()];
    let json = serde_json::to_string(value).unwrap_or_default();
    forms.push(json.trim_matches('"').to_string());
    forms.push(value.replace('\'', "''"));
    forms.extend(value.lines().map(str::trim).map(str::to_string));
    forms.retain(|f| !f.is_empty() && f != MASK);
    forms.sort();
    forms.dedup();
    // Longest first: a line of a value must not break up the whole value's match.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

const MASK: &str = "********";

/// `text` with each whole-token occurrence of `token` (not inside a longer word) masked.
fn replace_tokens(text: &str, token: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(token) {
        if at < last {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + token.len()..].chars().next();
        let starts_word = token.chars().next().is_some_and(|c| c.is_alphanumeric());
        let ends_word = token
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric());
        if (starts_word && word(before)) || (ends_word && word(after)) {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str(MASK);
        last = at + token.len();
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::mask_parsed;

    fn mask(text: &str) -> String {
        mask_parsed("t.yaml", text).unwrap_or_default()
    }

    #[test]
    fn secrets_in_every_yaml_form_are_masked() {
        let text = r#"a: &pw anchored-secret
users:
  - { name: op, password: "quo\"ted # x", role: operator }
  - { name: b, "password": 'it''s-secret' }
  - name: c
    password : spaced-colon
  - name: d
    password:
      next-line-secret
  - name: e
    password: |
      block-line-one
      block-line-two
  - name: f
    password: pa,ss}word
  - name: g
    password: *pw
"#;
        let masked = mask_parsed("t.yaml", text).unwrap_or_default();
        for secret in [
            "anchored-secret",
            "quo",
            "ted",
            "it''s-secret",
            "spaced-colon",
            "next-line-secret",
            "block-line-one",
            "block-line-two",
            "ss}word",
        ] {
            assert!(!masked.contains(secret), "{secret} in:\n{masked}");
        }
        assert!(masked.contains("name: op"), "{masked}");
        assert!(masked.contains("role: operator"), "{masked}");
    }

    #[test]
    fn a_file_that_does_not_parse_is_not_shown() {
        assert!(mask_parsed("t.yaml", "password: [unclosed\n").is_err());
    }

    #[test]
    fn secrets_are_masked_in_block_and_flow_style() {
        let text = "sparkplug:\n  password: hunter2 # the broker's\n  username: edge\nusers:\n  - { name: op, password: \"$argon2id$v=19$m=1,t=1,p=1$x$y\", role: operator }\n  - { name: v, password_file: /etc/uaedge/v.password }\n";
        let masked = mask(text);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(!masked.contains("argon2id"), "{masked}");
        assert!(
            masked.contains("password: ******** # the broker's"),
            "{masked}"
        );
        assert!(masked.contains("username: edge"), "{masked}");
        assert!(masked.contains("role: operator }"), "{masked}");
        assert!(
            masked.contains("password_file: /etc/uaedge/v.password"),
            "{masked}"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "node:\n  name: gateway-01 # a comment with password: in it\ndevices: []\n";
        assert_eq!(mask(text), text);
    }
}
