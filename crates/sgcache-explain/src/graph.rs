//! The action graph the go command writes with `-debug-actiongraph=FILE`
//! (`cmd/go/internal/work/action.go`, `actionJSON`): one JSON array, one object per action,
//! written again at the end of the build with what ran.
//!
//! The fields used here: `ID` (the index), `Mode` (`build`, `link`, `vet`, `test run`, …),
//! `Package` (the import path; a test copy of a package has the same one), `Deps`,
//! `ActionID` — base64url of the **first 15 bytes** of the 32-byte action id, as
//! `buildid.HashToString` writes it (so every GOCACHEPROG `get` can be joined to its package)
//! — and `Cmd`, the commands the action ran: an action that found its result in the cache
//! runs none.

use serde::Deserialize;

/// Bytes of the action id the graph shows.
pub const PREFIX: usize = 15;

/// Why an action graph could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Not the JSON the go command writes.
    #[error("the action graph is not the go command's -debug-actiongraph JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An action's `ID` is not its position.
    #[error("the action graph lists action {found} at position {at}")]
    Order {
        /// Where it is.
        at: usize,
        /// The `ID` it has.
        found: usize,
    },
    /// A dependency names no action.
    #[error("action {action} of the action graph depends on action {dep}, which does not exist")]
    Dep {
        /// The action.
        action: usize,
        /// The missing dependency.
        dep: usize,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    #[serde(rename = "ID")]
    id: usize,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    deps: Option<Vec<usize>>,
    #[serde(rename = "ActionID", default)]
    action_id: Option<String>,
    #[serde(rename = "BuildID", default)]
    build_id: Option<String>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    failed: bool,
}

/// One action of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphAction {
    /// `build`, `link`, `vet`, `test run`, `build check cache`, ….
    pub mode: String,
    /// Import path (empty for actions without a package).
    pub package: String,
    /// Indices of the actions this one depends on.
    pub deps: Vec<usize>,
    /// The first 15 bytes of the action id, when the action computed one.
    pub action_prefix: Option<[u8; PREFIX]>,
    /// The action's build ID (`actionID/contentID`), when known.
    pub build_id: Option<String>,
    /// Whether it ran a command: its result was not in the cache.
    pub ran: bool,
    /// Whether it failed.
    pub failed: bool,
}

/// A parsed action graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// The actions, indexed by their `ID`.
    pub actions: Vec<GraphAction>,
}

/// Decodes `buildid.HashToString`'s 20 characters into the 15 bytes they stand for.
pub fn decode_action_prefix(s: &str) -> Option<[u8; PREFIX]> {
    if s.len() != 20 {
        return None;
    }
    let v = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(s).ok()?;
    v.try_into().ok()
}

/// The 20-character text of the first 15 bytes of `id`.
pub fn encode_action_prefix(id: &[u8; 32]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(&id[..PREFIX])
}

impl Graph {
    /// Parses the JSON the go command wrote. Every index is checked.
    pub fn parse(json: &[u8]) -> Result<Graph, GraphError> {
        let raw: Vec<Raw> = serde_json::from_slice(json)?;
        let n = raw.len();
        let mut actions = Vec::with_capacity(n);
        for (at, r) in raw.into_iter().enumerate() {
            if r.id != at {
                return Err(GraphError::Order { at, found: r.id });
            }
            let deps = r.deps.unwrap_or_default();
            if let Some(&dep) = deps.iter().find(|&&d| d >= n) {
                return Err(GraphError::Dep { action: at, dep });
            }
            actions.push(GraphAction {
                mode: r.mode,
                package: r.package,
                deps,
                action_prefix: r.action_id.as_deref().and_then(decode_action_prefix),
                build_id: r.build_id.filter(|b| !b.is_empty()),
                ran: r.cmd.is_some_and(|c| !c.is_empty()),
                failed: r.failed,
            });
        }
        Ok(Graph { actions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_go_writes() {
        // Cut from `go test -debug-actiongraph` (Go 1.26.8).
        let json = br#"[
        {"ID": 0, "Mode": "build", "Package": "example.com/m/leaf", "Deps": [1],
         "ActionID": "gZfeIXfAQLApCmlE4VRA", "BuildID": "gZfeIXfAQLApCmlE4VRA/4qmiUavoe_84AibvGEct",
         "Cmd": ["/usr/local/go/pkg/tool/linux_amd64/compile -o ..."], "Objdir": "/tmp/b004/",
         "TimeReady": "2026-11-30T22:11:06.1Z", "NeedBuild": true},
        {"ID": 1, "Mode": "build check cache", "Package": "example.com/m/leaf", "Cmd": null},
        {"ID": 2, "Mode": "vet", "Package": "example.com/m/leaf", "Deps": [0], "Cmd": []}
        ]"#;
        let g = Graph::parse(json).unwrap();
        assert_eq!(g.actions.len(), 3);
        let a = &g.actions[0];
        assert!(a.ran);
        assert_eq!(a.deps, vec![1]);
        let p = a.action_prefix.unwrap();
        assert_eq!(
            encode_action_prefix(&{
                let mut full = [0u8; 32];
                full[..15].copy_from_slice(&p);
                full
            }),
            "gZfeIXfAQLApCmlE4VRA"
        );
        assert!(!g.actions[1].ran && !g.actions[2].ran);
        assert_eq!(g.actions[2].action_prefix, None);
    }

    #[test]
    fn refuses_broken_graphs() {
        assert!(matches!(Graph::parse(b"{}"), Err(GraphError::Json(_))));
        assert!(matches!(
            Graph::parse(b"[{\"ID\":"),
            Err(GraphError::Json(_))
        ));
        assert!(matches!(
            Graph::parse(br#"[{"ID":1,"Mode":"build"}]"#),
            Err(GraphError::Order { at: 0, found: 1 })
        ));
        assert!(matches!(
            Graph::parse(br#"[{"ID":0,"Mode":"build","Deps":[7]}]"#),
            Err(GraphError::Dep { action: 0, dep: 7 })
        ));
        let g =
            Graph::parse(br#"[{"ID":0,"Mode":"build","ActionID":"not base64 at all!!"}]"#).unwrap();
        assert_eq!(g.actions[0].action_prefix, None);
        assert_eq!(decode_action_prefix("short"), None);
    }
}
