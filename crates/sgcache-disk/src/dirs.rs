//! Go's `DefaultDir` / `os.UserCacheDir` resolution, with the environment passed in (library
//! crates never read the environment themselves).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Operating-system family for [`default_dir_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsFamily {
    /// Linux and other Unix: `$XDG_CACHE_HOME` or `$HOME/.cache`.
    Unix,
    /// macOS / iOS: `$HOME/Library/Caches`.
    Darwin,
    /// Windows: `%LocalAppData%`.
    Windows,
}

impl OsFamily {
    /// The family this binary was built for.
    pub const fn current() -> Self {
        if cfg!(any(target_os = "macos", target_os = "ios")) {
            OsFamily::Darwin
        } else if cfg!(windows) {
            OsFamily::Windows
        } else {
            OsFamily::Unix
        }
    }
}

/// The cache directory the go command would use: `GOCACHE` if set (must be absolute; `off` is
/// an error because sgcache needs a directory), else `UserCacheDir()/go-build`.
pub fn default_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    default_dir_for(OsFamily::current(), env)
}

/// [`default_dir`] for a given OS family (pure; used by tests).
pub fn default_dir_for(os: OsFamily, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(dir) = get("GOCACHE") {
        if dir == "off" {
            return Err(Error::NoCacheDir(
                "GOCACHE=off disables the build cache; set GOCACHE to an absolute path".into(),
            ));
        }
        if !is_abs(os, &dir) {
            return Err(Error::NoCacheDir("GOCACHE is not an absolute path".into()));
        }
        return Ok(PathBuf::from(dir));
    }
    let base = user_cache_dir(os, &get)
        .map_err(|e| Error::NoCacheDir(format!("GOCACHE is not defined and {e}")))?;
    Ok(base.join("go-build"))
}

fn user_cache_dir(os: OsFamily, get: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    match os {
        OsFamily::Windows => get("LocalAppData")
            .map(PathBuf::from)
            .ok_or_else(|| "%LocalAppData% is not defined".to_owned()),
        OsFamily::Darwin => get("HOME")
            .map(|h| Path::new(&h).join("Library/Caches"))
            .ok_or_else(|| "$HOME is not defined".to_owned()),
        OsFamily::Unix => match get("XDG_CACHE_HOME") {
            Some(x) if !is_abs(os, &x) => Err("path in $XDG_CACHE_HOME is relative".to_owned()),
            Some(x) => Ok(PathBuf::from(x)),
            None => get("HOME")
                .map(|h| Path::new(&h).join(".cache"))
                .ok_or_else(|| "neither $XDG_CACHE_HOME nor $HOME are defined".to_owned()),
        },
    }
}

fn is_abs(os: OsFamily, p: &str) -> bool {
    match os {
        OsFamily::Windows => {
            let b = p.as_bytes();
            (b.len() >= 3
                && b[0].is_ascii_alphabetic()
                && b[1] == b':'
                && (b[2] == b'\\' || b[2] == b'/'))
                || p.starts_with("\\\\")
                || p.starts_with("//")
        }
        _ => p.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn resolution() {
        use OsFamily::*;
        let ok = |os, pairs: &[(&str, &str)]| default_dir_for(os, &env(pairs)).unwrap();
        let err =
            |os, pairs: &[(&str, &str)]| default_dir_for(os, &env(pairs)).unwrap_err().to_string();
        assert_eq!(
            ok(
                Unix,
                &[("GOCACHE", "/g"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]
            ),
            Path::new("/g")
        );
        assert_eq!(
            ok(Unix, &[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            Path::new("/x/go-build")
        );
        assert_eq!(
            ok(
                Unix,
                &[("GOCACHE", ""), ("XDG_CACHE_HOME", ""), ("HOME", "/h")]
            ),
            Path::new("/h/.cache/go-build")
        );
        assert!(err(Unix, &[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]).contains("relative"));
        assert!(err(Unix, &[]).contains("neither $XDG_CACHE_HOME nor $HOME"));
        assert!(err(Unix, &[("GOCACHE", "off")]).contains("GOCACHE=off"));
        assert!(err(Unix, &[("GOCACHE", ".")]).contains("not an absolute path"));
        assert_eq!(
            ok(Darwin, &[("HOME", "/Users/u"), ("XDG_CACHE_HOME", "/x")]),
            Path::new("/Users/u/Library/Caches/go-build")
        );
        assert!(err(Darwin, &[]).contains("$HOME is not defined"));
        assert_eq!(
            ok(Windows, &[("LocalAppData", "C:\\L")]),
            Path::new("C:\\L").join("go-build")
        );
        assert_eq!(ok(Windows, &[("GOCACHE", "C:\\g")]), Path::new("C:\\g"));
        assert!(err(Windows, &[("GOCACHE", "/g")]).contains("absolute"));
        assert!(err(Windows, &[]).contains("%LocalAppData%"));
    }
}
