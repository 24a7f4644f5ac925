//! The scopes forwarded requests need (`serve --upstream ... --route-scope
//! 'METHOD /path/prefix=scope1 scope2'`, repeatable).
//!
//! A rule names a method (`*` for any) and a path prefix. The rule whose
//! prefix is the longest that the request's path starts with decides; at
//! equal length a rule for the request's method beats one for `GET` applied
//! to a `HEAD` (upstreams answer `HEAD` with their `GET` handler), which
//! beats `*`. A path no rule matches needs no scope, and so does one whose
//! deciding rule names none (`GET /public=`: an exception under a broader
//! rule). A request needs every scope of its rule.
//!
//! Paths are compared as an upstream may read them, so that no spelling of a
//! path escapes its rule. Upstreams differ (some decode percent-encodings
//! once, some twice, some resolve `..` and some route on the text as it
//! came), so a request is judged in every such reading and needs the scopes
//! of every rule that decides one of them: the path as sent, and after each
//! round of percent-decoding (at most three), each both as text and with
//! dot segments resolved (`\` read as `/`, `;` parameters cut from segments,
//! as `/..;/` is `/../` to Tomcat; empty and `.` segments dropped, `..`
//! resolved), ASCII letters compared case-insensitively (some upstreams
//! ignore case). So `/ORDERS`, `/%6Frders`, `//orders` and `/x/../orders`
//! fall under `/orders`, and so do `/orders/..%2Fx` and `/orders/%2e%2e/x`,
//! which an upstream routing on the raw or once-decoded text hands to its
//! `/orders` handler. Reading a path several ways can only make rules apply
//! to more requests, never to fewer. Prefixes are plain string prefixes:
//! `/orders` also covers `/orders.json` and `/orders-archive`.

use assetpool_core::ScopeSet;
use axum::http::Method;
use std::fmt;

/// How many times percent-encodings are decoded at most.
const DECODE_ROUNDS: usize = 3;

/// One `--route-scope` rule.
#[derive(Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// `None` for `*`.
    method: Option<Method>,
    /// The normalised prefix ([`normalise_path`]).
    prefix: String,
    scopes: ScopeSet,
}

impl fmt::Debug for RouteRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

impl fmt::Display for RouteRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = self.method.as_ref().map_or("*", Method::as_str);
        write!(formatter, "{method} {}={}", self.prefix, self.scopes)
    }
}

/// Why a `--route-scope` rule is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRuleError {
    /// Not `METHOD /path/prefix=scopes`.
    Shape,
    /// The method is not `*` or an HTTP method name.
    Method,
    /// The prefix does not start with `/` or holds a space or control character.
    Prefix,
    /// A scope is malformed, or there are too many.
    Scopes(assetpool_core::scopes::ScopeError),
    /// Two rules for the same method and prefix.
    Duplicate,
}

impl fmt::Display for RouteRuleError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteRuleError::Shape => formatter
                .write_str("expected 'METHOD /path/prefix=scope1 scope2' (METHOD may be *)"),
            RouteRuleError::Method => {
                formatter.write_str("the method must be * or an HTTP method such as GET")
            }
            RouteRuleError::Prefix => {
                formatter.write_str("the path prefix must start with / and hold no spaces")
            }
            RouteRuleError::Scopes(error) => error.fmt(formatter),
            RouteRuleError::Duplicate => {
                formatter.write_str("two rules for the same method and path prefix")
            }
        }
    }
}

impl std::error::Error for RouteRuleError {}

impl RouteRule {
    /// Parses `METHOD /path/prefix=scope1 scope2` (the scopes may be empty).
    pub fn parse(text: &str) -> Result<RouteRule, RouteRuleError> {
        let text = text.trim();
        let (method, rest) = text
            .split_once(|character: char| character.is_ascii_whitespace())
            .ok_or(RouteRuleError::Shape)?;
        let (prefix, scopes) = rest
            .trim_start()
            .rsplit_once('=')
            .ok_or(RouteRuleError::Shape)?;
        let method = match method {
            "*" => None,
            name => {
                let upper = name.to_ascii_uppercase();
                if upper.is_empty() || !upper.bytes().all(|byte| byte.is_ascii_uppercase()) {
                    return Err(RouteRuleError::Method);
                }
                Some(Method::from_bytes(upper.as_bytes()).map_err(|_| RouteRuleError::Method)?)
            }
        };
        let prefix = prefix.trim();
        if !prefix.starts_with('/')
            || prefix
                .chars()
                .any(|character| character.is_whitespace() || character.is_control())
        {
            return Err(RouteRuleError::Prefix);
        }
        let scopes = ScopeSet::parse(scopes.trim()).map_err(RouteRuleError::Scopes)?;
        Ok(RouteRule {
            method,
            prefix: normalise_path(prefix),
            scopes,
        })
    }

    /// How well the rule fits a request with `method` whose normalised path
    /// is `path`: `None` when it does not apply; otherwise the larger the
    /// better (longer prefix first, then the more specific method).
    fn fit(&self, method: &str, path: &str) -> Option<(usize, u8)> {
        // Methods are compared ignoring case: an upstream may take `get` for `GET`.
        let method_rank = match &self.method {
            None => 0,
            Some(rule) if rule.as_str().eq_ignore_ascii_case(method) => 2,
            Some(rule) if *rule == Method::GET && method.eq_ignore_ascii_case("HEAD") => 1,
            Some(_) => return None,
        };
        path.starts_with(&self.prefix)
            .then_some((self.prefix.len(), method_rank))
    }
}

/// The rules of `--route-scope`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteScopes {
    rules: Vec<RouteRule>,
}

impl RouteScopes {
    /// The rules, refusing two for the same method and prefix.
    pub fn new(rules: Vec<RouteRule>) -> Result<RouteScopes, RouteRuleError> {
        for (index, rule) in rules.iter().enumerate() {
            let repeated = rules[..index]
                .iter()
                .any(|earlier| earlier.method == rule.method && earlier.prefix == rule.prefix);
            if repeated {
                return Err(RouteRuleError::Duplicate);
            }
        }
        Ok(RouteScopes { rules })
    }

    /// Parses every rule of `texts`; the error names the first bad one.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<RouteScopes, String> {
        let rules = texts
            .iter()
            .map(|text| {
                RouteRule::parse(text.as_ref())
                    .map_err(|error| format!("invalid route scope {:?}: {error}", text.as_ref()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        RouteScopes::new(rules).map_err(|error| format!("invalid route scopes: {error}"))
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The scopes a request with `method` to `path` (without its query)
    /// needs: those of the deciding rule of every reading of the path
    /// (see the module documentation); `None` when it needs none.
    pub fn requirement(&self, method: &Method, path: &str) -> Option<ScopeSet> {
        if self.rules.is_empty() {
            return None;
        }
        let mut needed: Option<ScopeSet> = None;
        for reading in readings(path) {
            let Some(scopes) = self.deciding_scopes(method.as_str(), &reading) else {
                continue;
            };
            needed = Some(match needed {
                // A union beyond a set's limits is only possible with rules
                // naming more than 32 scopes between them: keep the larger.
                Some(so_far) => so_far.union(scopes).unwrap_or_else(|_| {
                    if so_far.len() >= scopes.len() {
                        so_far
                    } else {
                        scopes.clone()
                    }
                }),
                None => scopes.clone(),
            });
        }
        needed
    }

    /// The scopes of the rule deciding `path` read as `reading`, if it names any.
    fn deciding_scopes(&self, method: &str, reading: &str) -> Option<&ScopeSet> {
        self.rules
            .iter()
            .filter_map(|rule| rule.fit(method, reading).map(|fit| (fit, rule)))
            .max_by_key(|(fit, _)| *fit)
            .map(|(_, rule)| &rule.scopes)
            .filter(|scopes| !scopes.is_empty())
    }
}

/// The ways an upstream may read `path` (see the module's documentation):
/// as sent and after each round of percent-decoding, each as text (`\` read
/// as `/`) and resolved ([`resolve_segments`]), in ASCII lower case.
fn readings(path: &str) -> Vec<String> {
    let mut texts = vec![path.to_owned()];
    for _ in 0..DECODE_ROUNDS {
        let last = texts.last().map(String::as_str).unwrap_or_default();
        let next = percent_encoding::percent_decode_str(last)
            .decode_utf8_lossy()
            .into_owned();
        if next == last {
            break;
        }
        texts.push(next);
    }
    let mut readings = Vec::with_capacity(texts.len() * 2);
    for text in texts {
        let text = text.replace('\\', "/").to_ascii_lowercase();
        let resolved = resolve_segments(&text);
        if resolved != text {
            readings.push(resolved);
        }
        readings.push(text);
    }
    readings
}

/// `path` with `;` parameters cut from its segments, empty and `.` segments
/// dropped and `..` resolved; a trailing `/` kept, also where the last
/// segment was empty, `.`, `..` or parameters only (`/admin/.` is `/admin/`).
fn resolve_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut ends_in_directory = false;
    for segment in path.split('/') {
        let segment = segment.split(';').next().unwrap_or_default();
        ends_in_directory = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut resolved = String::with_capacity(path.len() + 1);
    for segment in &segments {
        resolved.push('/');
        resolved.push_str(segment);
    }
    if resolved.is_empty() || ends_in_directory {
        resolved.push('/');
    }
    resolved
}

/// A path as rules compare it (see the module's documentation): decoded,
/// separators unified, `;` parameters cut, dot segments resolved, ASCII
/// lower case, a trailing `/` kept.
pub fn normalise_path(path: &str) -> String {
    let mut decoded = path.to_owned();
    for _ in 0..DECODE_ROUNDS {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let decoded = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        let segment = segment.split(';').next().unwrap_or_default();
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalised = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        normalised.push('/');
        normalised.push_str(segment);
    }
    if normalised.is_empty() || decoded.ends_with('/') {
        normalised.push('/');
    }
    normalised.make_ascii_lowercase();
    normalised
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(rules: &[&str]) -> RouteScopes {
        RouteScopes::parse(rules).unwrap()
    }

    fn required(routes: &RouteScopes, method: Method, path: &str) -> Option<String> {
        routes
            .requirement(&method, path)
            .map(|scopes| scopes.to_string())
    }

    #[test]
    fn no_reading_of_a_path_escapes_its_rule() {
        let routes = scopes(&["* /admin=admin", "GET /public=", "GET /files/=files"]);
        // An upstream routing on the text as sent, or decoded once, hands
        // these to its /admin handler: they need what /admin needs.
        for path in [
            "/admin/..%2Fx",
            "/admin/..%2fx",
            "/admin/x%5C..%5C..%5Cx",
            "/admin/%2e%2e/x",
            "/admin/%252e%252e/x",
            "/admin/a/../../x",
            "/%61dmin/..%252fx",
            "/ADMIN/..%2Fx",
            "/public/../admin",
            "/public/..;/admin",
        ] {
            assert_eq!(
                required(&routes, Method::GET, path).as_deref(),
                Some("admin"),
                "{path}"
            );
        }
        // A directory prefix: its dot and parameter spellings are the directory.
        for path in [
            "/files/.",
            "/files/;",
            "/files/x/..",
            "/files/%2e",
            "/files/",
        ] {
            assert_eq!(
                required(&routes, Method::GET, path).as_deref(),
                Some("files"),
                "{path}"
            );
        }
        assert_eq!(required(&routes, Method::GET, "/public/x"), None);
        assert_eq!(required(&routes, Method::GET, "/elsewhere/..%2Fx"), None);
    }

    #[test]
    fn methods_match_whatever_their_case() {
        let routes = scopes(&["GET /reports=reports:read"]);
        for method in ["get", "Get", "GET", "head"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                required(&routes, method.clone(), "/reports").as_deref(),
                Some("reports:read"),
                "{method}"
            );
        }
        assert_eq!(required(&routes, Method::POST, "/reports"), None);
    }

    #[test]
    fn rules_parse_and_refuse_bad_shapes() {
        let rule = RouteRule::parse("  get  /Orders/=orders:read  orders:list ").unwrap();
        assert_eq!(rule.to_string(), "GET /orders/=orders:list orders:read");
        assert_eq!(RouteRule::parse("* /=").unwrap().to_string(), "* /=");
        for (bad, error) in [
            ("GET", RouteRuleError::Shape),
            ("GET /orders", RouteRuleError::Shape),
            ("/orders=a", RouteRuleError::Shape),
            ("G3T /orders=a", RouteRuleError::Method),
            ("GET orders=a", RouteRuleError::Prefix),
            ("GET /ord ers=a", RouteRuleError::Prefix),
            (
                "GET /orders=Orders",
                RouteRuleError::Scopes(assetpool_core::scopes::ScopeError::Malformed),
            ),
        ] {
            assert_eq!(RouteRule::parse(bad), Err(error), "{bad}");
        }
        assert!(RouteScopes::parse(&["GET /a=x", "get /A=y"])
            .unwrap_err()
            .contains("same method"));
        let error = RouteScopes::parse(&["GET /a"]).unwrap_err();
        assert!(error.contains(r#""GET /a""#), "{error}");
    }

    #[test]
    fn the_longest_prefix_decides_and_a_method_beats_star() {
        let routes = scopes(&[
            "GET /orders=orders:read",
            "* /orders=orders:write",
            "* /orders/export=orders:export reports",
            "GET /orders/public=",
        ]);
        let read = Some("orders:read".to_owned());
        let write = Some("orders:write".to_owned());
        assert_eq!(required(&routes, Method::GET, "/orders/7"), read);
        assert_eq!(required(&routes, Method::HEAD, "/orders/7"), read);
        assert_eq!(required(&routes, Method::POST, "/orders"), write);
        assert_eq!(required(&routes, Method::DELETE, "/orders/7"), write);
        assert_eq!(
            required(&routes, Method::GET, "/orders/export/1"),
            Some("orders:export reports".to_owned())
        );
        assert_eq!(required(&routes, Method::GET, "/orders/public/x"), None);
        assert_eq!(required(&routes, Method::POST, "/orders/public/x"), write);
        assert_eq!(required(&routes, Method::GET, "/other"), None);
        assert_eq!(required(&routes, Method::GET, "/ordersx"), read);
        assert_eq!(
            required(&RouteScopes::default(), Method::GET, "/orders"),
            None
        );
        let head = scopes(&["GET /a=get", "HEAD /a=head"]);
        assert_eq!(required(&head, Method::HEAD, "/a"), Some("head".to_owned()));
    }

    #[test]
    fn no_spelling_of_a_path_escapes_its_rule() {
        let routes = scopes(&["* /admin=admin", "GET /public="]);
        let admin = Some("admin".to_owned());
        for path in [
            "/admin",
            "/ADMIN/x",
            "//admin",
            "/./admin",
            "/public/../admin",
            "/public/..;/admin",
            "/public%2F..%2Fadmin",
            "/public%252F..%252Fadmin",
            "/%61dmin",
            "/public\\..\\admin",
            "/admin;jsessionid=1",
        ] {
            assert_eq!(required(&routes, Method::GET, path), admin, "{path}");
        }
        assert_eq!(required(&routes, Method::GET, "/public/x"), None);
    }

    #[test]
    fn paths_normalise() {
        assert_eq!(normalise_path("/"), "/");
        assert_eq!(normalise_path(""), "/");
        assert_eq!(normalise_path("/a/b/"), "/a/b/");
        assert_eq!(normalise_path("/a/../../b"), "/b");
        assert_eq!(normalise_path("/A%20B"), "/a b");
        assert_eq!(normalise_path("/%zz"), "/%zz");
    }
}
