//! Which servers an aggregate endpoint stands for, compiled once per apply: `/mcp` is every
//! server, `/mcp/profile/{id}` the servers of `profiles[]` (and `default`, reserved by the
//! config for it, every server too), in configuration order. The catalog also owns the
//! runtime's routing caches ([`RouteCache`]), so they start empty with every new config.

use std::collections::HashMap;

use conduit_config::{Document, NamespaceStrategy};

pub(crate) mod routes;

use routes::RouteCache;

/// The profile id the configuration reserves for "every server".
const DEFAULT_PROFILE: &str = "default";

/// An aggregate endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/mcp`: every server.
    All,
    /// `/mcp/profile/{id}`.
    Profile(String),
}

impl Scope {
    /// The aggregate endpoint a request path names, if any.
    pub fn from_path(path: &str) -> Option<Scope> {
        if path == "/mcp" {
            return Some(Scope::All);
        }
        let id = path.strip_prefix("/mcp/profile/")?;
        (!id.is_empty() && !id.contains('/')).then(|| Scope::Profile(id.to_owned()))
    }

    /// How the endpoint is named in `X-Conduit-Server-Id`, metrics and session tokens:
    /// `aggregate` or `profile:<id>`.
    pub fn label(&self) -> String {
        match self {
            Scope::All => "aggregate".to_owned(),
            Scope::Profile(id) => format!("profile:{id}"),
        }
    }

    /// The path of the endpoint, for messages.
    pub fn path(&self) -> String {
        match self {
            Scope::All => "/mcp".to_owned(),
            Scope::Profile(id) => format!("/mcp/profile/{id}"),
        }
    }
}

/// The aggregate endpoints of one runtime.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every server id, in configuration order.
    servers: Vec<String>,
    profiles: HashMap<String, Vec<String>>,
    strategy: Strategy,
    routes: RouteCache,
}

/// How names are exposed on aggregates (`router.namespace_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// `<server_id>.<name>`.
    #[default]
    Prefix,
    /// Unchanged; a name offered by two members is an error.
    None,
}

/// A profile names a server that is not configured. The config validation refuses this
/// already; the runtime checks it again so it never routes to a server it does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMember {
    /// Where the id is in the document.
    pub path: String,
    /// The unknown server id.
    pub id: String,
}

impl Catalog {
    /// The catalog of a resolved document.
    pub fn compile(document: &Document) -> Result<Catalog, Vec<UnknownMember>> {
        let servers: Vec<String> = document.servers.iter().map(|s| s.id.clone()).collect();
        let mut unknown = Vec::new();
        let mut profiles = HashMap::with_capacity(document.profiles.len());
        for (index, profile) in document.profiles.iter().enumerate() {
            for (i, id) in profile.server_ids.iter().enumerate() {
                if !servers.contains(id) {
                    unknown.push(UnknownMember {
                        path: format!("profiles[{index}].server_ids[{i}]"),
                        id: id.clone(),
                    });
                }
            }
            profiles.insert(profile.id.clone(), profile.server_ids.clone());
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let strategy = match document.router.as_ref().map(|r| r.namespace_strategy()) {
            Some(NamespaceStrategy::None) => Strategy::None,
            Some(NamespaceStrategy::Prefix) | None => Strategy::Prefix,
        };
        Ok(Catalog {
            servers,
            profiles,
            strategy,
            routes: RouteCache::default(),
        })
    }

    /// The member server ids of `scope` in configuration order; `None` for an unknown
    /// profile.
    pub fn members(&self, scope: &Scope) -> Option<&[String]> {
        match scope {
            Scope::All => Some(&self.servers),
            Scope::Profile(id) => match self.profiles.get(id) {
                Some(members) => Some(members),
                None if id == DEFAULT_PROFILE => Some(&self.servers),
                None => None,
            },
        }
    }

    /// How names are exposed on these endpoints.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The routing caches of this runtime.
    pub fn routes(&self) -> &RouteCache {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(text: &str) -> Document {
        Document::from_text(text).expect("valid document")
    }

    #[test]
    fn paths_name_the_aggregate_and_profiles() {
        assert_eq!(Scope::from_path("/mcp"), Some(Scope::All));
        assert_eq!(
            Scope::from_path("/mcp/profile/ops"),
            Some(Scope::Profile("ops".into()))
        );
        for other in [
            "/mcp/",
            "/mcp/alpha",
            "/mcp/profile/",
            "/mcp/profile/a/b",
            "/",
        ] {
            assert_eq!(Scope::from_path(other), None, "{other}");
        }
        assert_eq!(Scope::All.label(), "aggregate");
        assert_eq!(Scope::Profile("ops".into()).label(), "profile:ops");
    }

    #[test]
    fn members_follow_the_configuration() {
        let catalog = Catalog::compile(&document(
            "servers:\n  - id: alpha\n    url: http://127.0.0.1:1/mcp\n  - id: beta\n    url: http://127.0.0.1:2/mcp\n\
             profiles:\n  - id: ops\n    server_ids: [beta]\n\
             router:\n  namespace_strategy: none\n",
        ))
        .expect("compiles");
        assert_eq!(
            catalog.members(&Scope::All),
            Some(&["alpha".to_owned(), "beta".to_owned()][..])
        );
        assert_eq!(
            catalog.members(&Scope::Profile("ops".into())),
            Some(&["beta".to_owned()][..])
        );
        assert_eq!(
            catalog.members(&Scope::Profile("default".into())),
            catalog.members(&Scope::All)
        );
        assert_eq!(catalog.members(&Scope::Profile("nope".into())), None);
        assert_eq!(catalog.strategy(), Strategy::None);
    }

    #[test]
    fn unknown_profile_members_are_refused() {
        let mut doc = document("servers:\n  - id: alpha\n    url: http://127.0.0.1:1/mcp\n");
        doc.profiles.push(conduit_config::Profile {
            id: "ops".into(),
            server_ids: vec!["alpha".into(), "ghost".into()],
            ..Default::default()
        });
        let unknown = Catalog::compile(&doc).expect_err("refused");
        assert_eq!(
            unknown,
            [UnknownMember {
                path: "profiles[0].server_ids[1]".into(),
                id: "ghost".into()
            }]
        );
        assert_eq!(
            Catalog::compile(&Document::default())
                .expect("empty")
                .strategy(),
            Strategy::Prefix
        );
    }
}
