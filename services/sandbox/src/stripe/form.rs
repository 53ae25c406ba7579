//! Stripe's request parameters: `application/x-www-form-urlencoded` query and body merged into one
//! nested bag, decoded "Rack-style" (stripe.md §1.1): `a[b]=1` nests, `a[]=x` appends, `a[0]=x`
//! indexes; brackets may arrive raw or as `%5B`/`%5D`. Typed accessors turn the bag into the
//! values handlers need and produce Stripe's 400s when a value does not fit.

use std::collections::BTreeMap;

use serde_json::Value;

use super::errors::{StripeError, StripeResult};

/// One decoded value: a string, a keyed object, or an appended list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Leaf(String),
    Map(BTreeMap<String, Node>),
    List(Vec<Node>),
}

impl Node {
    fn to_json(&self) -> Value {
        match self {
            Node::Leaf(s) => Value::String(s.clone()),
            Node::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Node::List(l) => Value::Array(l.iter().map(Node::to_json).collect()),
        }
    }

    /// The elements of `a[]=..` or `a[0]=..&a[1]=..` (by index order), or `None` for anything else.
    fn elements(&self) -> Option<Vec<&Node>> {
        match self {
            Node::List(l) => Some(l.iter().collect()),
            Node::Map(m) => {
                let mut indexed = m
                    .iter()
                    .map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v)))
                    .collect::<Option<Vec<_>>>()?;
                indexed.sort_by_key(|(i, _)| *i);
                Some(indexed.into_iter().map(|(_, v)| v).collect())
            }
            Node::Leaf(_) => None,
        }
    }
}

/// A key's path: `metadata[order][]` is `metadata`, `order`, append.
#[derive(Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Append,
}

fn split_key(key: &str) -> Vec<Seg> {
    let Some(open) = key.find('[') else {
        return vec![Seg::Key(key.to_owned())];
    };
    if open == 0 {
        return vec![Seg::Key(key.to_owned())];
    }
    let mut segs = vec![Seg::Key(key[..open].to_owned())];
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            // Unbalanced: Rack keeps the remainder as part of the last name; so do we.
            return vec![Seg::Key(key.to_owned())];
        };
        let name = &inner[..close];
        segs.push(if name.is_empty() {
            Seg::Append
        } else {
            Seg::Key(name.to_owned())
        });
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() {
        return vec![Seg::Key(key.to_owned())];
    }
    segs
}

fn insert(map: &mut BTreeMap<String, Node>, segs: &[Seg], value: String) {
    let Some((Seg::Key(first), rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), Node::Leaf(value));
        return;
    }
    let slot = map.entry(first.clone()).or_insert_with(|| empty_for(&rest[0]));
    insert_into(slot, rest, value);
}

fn empty_for(seg: &Seg) -> Node {
    match seg {
        Seg::Append => Node::List(Vec::new()),
        Seg::Key(_) => Node::Map(BTreeMap::new()),
    }
}

/// Puts `value` at `segs` below `node`, replacing whatever shape disagrees (the later key wins).
fn insert_into(node: &mut Node, segs: &[Seg], value: String) {
    match &segs[0] {
        Seg::Key(_) => {
            if !matches!(node, Node::Map(_)) {
                *node = Node::Map(BTreeMap::new());
            }
            if let Node::Map(m) = node {
                insert(m, segs, value);
            }
        }
        Seg::Append => {
            if !matches!(node, Node::List(_)) {
                *node = Node::List(Vec::new());
            }
            let Node::List(list) = node else { return };
            let rest = &segs[1..];
            if rest.is_empty() {
                list.push(Node::Leaf(value));
                return;
            }
            // Rack: `items[][a]=1&items[][b]=2` fills one element until a key repeats.
            let reuse = match (list.last(), &rest[0]) {
                (Some(Node::Map(m)), Seg::Key(k)) => !m.contains_key(k),
                _ => false,
            };
            if !reuse {
                list.push(empty_for(&rest[0]));
            }
            if let Some(last) = list.last_mut() {
                insert_into(last, rest, value);
            }
        }
    }
}

/// `%XX` and (in forms) `+` decoded; bytes that do not make UTF-8 are replaced.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The decoded parameters of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params {
    root: BTreeMap<String, Node>,
}

impl Params {
    /// Decodes each `&`-separated `key=value` of the query, then of the body (later keys win).
    pub(crate) fn decode(sources: &[&str]) -> Self {
        let mut root = BTreeMap::new();
        for source in sources {
            for pair in source.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let key = percent_decode(k, true);
                if key.is_empty() {
                    continue;
                }
                insert(&mut root, &split_key(&key), percent_decode(v, true));
            }
        }
        Self { root }
    }

    /// A stable rendering for idempotency fingerprints.
    pub(crate) fn canonical(&self) -> String {
        Node::Map(self.root.clone()).to_json().to_string()
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.root.get(name)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.root.contains_key(name)
    }

    /// 400 `parameter_unknown` for the first top-level parameter not in `allowed` (`expand` always is).
    pub(crate) fn allow(&self, allowed: &[&str]) -> StripeResult<()> {
        match self
            .root
            .keys()
            .find(|k| *k != "expand" && !allowed.contains(&k.as_str()))
        {
            Some(k) => Err(StripeError::param(
                "parameter_unknown",
                format!("Received unknown parameter: {k}"),
                k,
            )),
            None => Ok(()),
        }
    }

    /// A string parameter; an empty string counts as absent (Stripe's "unset").
    pub(crate) fn str(&self, name: &str) -> StripeResult<Option<String>> {
        str_of(self.node(name), name)
    }

    /// For updates: `None` when absent, `Some(None)` to unset (an empty value), else the new value.
    pub(crate) fn patch_str(&self, name: &str) -> StripeResult<Option<Option<String>>> {
        if self.has(name) {
            self.str(name).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn required_str(&self, name: &str) -> StripeResult<String> {
        self.str(name)?.ok_or_else(|| StripeError::missing(name))
    }

    /// The string at `name[key]`.
    pub(crate) fn nested_str(&self, name: &str, key: &str) -> StripeResult<Option<String>> {
        match self.node(name) {
            None => Ok(None),
            Some(Node::Map(m)) => str_of(m.get(key), &format!("{name}[{key}]")),
            Some(Node::Leaf(s)) if s.is_empty() => Ok(None),
            Some(_) => Err(invalid_object(name)),
        }
    }

    pub(crate) fn int(&self, name: &str) -> StripeResult<Option<i64>> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| StripeError::param("parameter_invalid_integer", format!("Invalid integer: {s}"), name)),
        }
    }

    pub(crate) fn positive_int(&self, name: &str) -> StripeResult<Option<i64>> {
        match self.int(name)? {
            Some(n) if n <= 0 => Err(StripeError::param(
                "parameter_invalid_integer",
                format!("This value must be greater than or equal to 1 ({name})."),
                name,
            )),
            other => Ok(other),
        }
    }

    pub(crate) fn float(&self, name: &str) -> StripeResult<Option<f64>> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(StripeError::param(
                    "parameter_invalid_float",
                    format!("Invalid decimal: {s}"),
                    name,
                )),
            },
        }
    }

    pub(crate) fn bool(&self, name: &str) -> StripeResult<Option<bool>> {
        match self.str(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(StripeError::param(
                "parameter_invalid_boolean",
                format!("Invalid boolean: {other}"),
                name,
            )),
        }
    }

    /// One of `choices`, or a 400 naming them.
    pub(crate) fn choice(&self, name: &str, choices: &[&str]) -> StripeResult<Option<String>> {
        match self.str(name)? {
            Some(v) if !choices.contains(&v.as_str()) => Err(StripeError::param(
                "parameter_invalid_string",
                format!("Invalid {name}: must be one of {}", choices.join(", ")),
                name,
            )),
            other => Ok(other),
        }
    }

    /// `name[]=..` / `name[0]=..` as strings (a lone `name=x` counts as one element).
    pub(crate) fn list(&self, name: &str) -> StripeResult<Vec<String>> {
        let Some(node) = self.node(name) else {
            return Ok(Vec::new());
        };
        if let Node::Leaf(s) = node {
            return Ok(if s.is_empty() { Vec::new() } else { vec![s.clone()] });
        }
        let elements = node.elements().ok_or_else(|| invalid_array(name))?;
        elements
            .into_iter()
            .map(|n| match n {
                Node::Leaf(s) => Ok(s.clone()),
                _ => Err(invalid_array(name)),
            })
            .collect()
    }

    /// `expand[]`/`expand[n]` paths.
    pub(crate) fn expand(&self) -> StripeResult<Vec<String>> {
        self.list("expand")
    }

    /// A nested object (`address[line1]=..`) as JSON strings; `name=` (empty) is `Some(Null)`.
    pub(crate) fn object(&self, name: &str) -> StripeResult<Option<Value>> {
        match self.node(name) {
            None => Ok(None),
            Some(Node::Leaf(s)) if s.is_empty() => Ok(Some(Value::Null)),
            Some(Node::Leaf(_)) | Some(Node::List(_)) => Err(invalid_object(name)),
            Some(node) => Ok(Some(node.to_json())),
        }
    }

    /// `metadata[k]=v` changes: `Some(v)` sets, `None` (an empty value) removes; `metadata=` clears
    /// everything (the outer `None`-key convention: `clear` is true).
    pub(crate) fn metadata(&self) -> StripeResult<MetadataUpdate> {
        let mut update = MetadataUpdate::default();
        match self.node("metadata") {
            None => {}
            Some(Node::Leaf(s)) if s.is_empty() => update.clear = true,
            Some(Node::Map(m)) => {
                for (k, v) in m {
                    let Node::Leaf(v) = v else {
                        return Err(invalid_object("metadata"));
                    };
                    if k.chars().count() > 40 {
                        return Err(StripeError::param(
                            "parameter_invalid_string",
                            format!("Metadata keys can have up to 40 characters, but you passed in a key that is {} characters. Invalid key: {k}", k.chars().count()),
                            &format!("metadata[{k}]"),
                        ));
                    }
                    if v.chars().count() > 500 {
                        return Err(StripeError::param(
                            "parameter_invalid_string",
                            format!(
                                "Metadata values can have up to 500 characters, but you passed in a value that is {} characters. Invalid value: {v}",
                                v.chars().count()
                            ),
                            &format!("metadata[{k}]"),
                        ));
                    }
                    update.set.push((k.clone(), (!v.is_empty()).then(|| v.clone())));
                }
            }
            Some(_) => return Err(invalid_object("metadata")),
        }
        Ok(update)
    }
}

fn str_of(node: Option<&Node>, name: &str) -> StripeResult<Option<String>> {
    match node {
        None => Ok(None),
        Some(Node::Leaf(s)) if s.is_empty() => Ok(None),
        Some(Node::Leaf(s)) => Ok(Some(s.clone())),
        Some(_) => Err(StripeError::param(
            "parameter_invalid_string",
            format!("Invalid string: {{...}} ({name} must be a string)"),
            name,
        )),
    }
}

fn invalid_object(name: &str) -> StripeError {
    StripeError::param("parameter_invalid_object", format!("Invalid object ({name})"), name)
}

fn invalid_array(name: &str) -> StripeError {
    StripeError::param("parameter_invalid_array", format!("Invalid array ({name})"), name)
}

/// Metadata changes a request asks for.
#[derive(Debug, Default)]
pub(crate) struct MetadataUpdate {
    clear: bool,
    set: Vec<(String, Option<String>)>,
}

/// An object's metadata: string keys to string values.
pub(crate) type Metadata = BTreeMap<String, String>;

impl MetadataUpdate {
    /// Applies the changes to `metadata`, refusing more than 50 keys.
    pub(crate) fn apply(self, metadata: &mut Metadata) -> StripeResult<()> {
        let mut next = if self.clear { Metadata::new() } else { metadata.clone() };
        for (k, v) in self.set {
            match v {
                Some(v) => next.insert(k, v),
                None => next.remove(&k),
            };
        }
        if next.len() > 50 {
            return Err(StripeError::param(
                "parameter_invalid_object",
                "Invalid metadata: metadata can have up to 50 keys".to_owned(),
                "metadata",
            ));
        }
        *metadata = next;
        Ok(())
    }

    /// A fresh object's metadata.
    pub(crate) fn build(self) -> StripeResult<Metadata> {
        let mut m = Metadata::new();
        self.apply(&mut m)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(p: &Params) -> Value {
        serde_json::from_str(&p.canonical()).unwrap()
    }

    #[test]
    fn nested_keys_raw_and_escaped() {
        let p = Params::decode(&["metadata[order_id]=42&metadata%5Bnote%5D=a+b%21&amount=100"]);
        assert_eq!(
            json(&p),
            serde_json::json!({ "amount": "100", "metadata": { "order_id": "42", "note": "a b!" } })
        );
    }

    #[test]
    fn arrays_appended_or_indexed() {
        let a = Params::decode(&["expand[]=customer&expand[]=latest_charge"]);
        let b = Params::decode(&["expand%5B1%5D=latest_charge&expand%5B0%5D=customer"]);
        let c = Params::decode(&["expand[10]=b&expand[9]=a"]);
        assert_eq!(a.expand().unwrap(), vec!["customer", "latest_charge"]);
        assert_eq!(b.expand().unwrap(), vec!["customer", "latest_charge"]);
        assert_eq!(c.expand().unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn arrays_of_objects() {
        let p = Params::decode(&["items[][price]=a&items[][qty]=1&items[][price]=b"]);
        assert_eq!(
            json(&p)["items"],
            serde_json::json!([{ "price": "a", "qty": "1" }, { "price": "b" }])
        );
        let p = Params::decode(&["items[0][price]=a&items[1][price]=b"]);
        assert_eq!(json(&p)["items"]["1"]["price"], "b");
    }

    #[test]
    fn query_and_body_merge_body_wins() {
        let p = Params::decode(&["limit=3&a=1", "a=2"]);
        assert_eq!(p.int("limit").unwrap(), Some(3));
        assert_eq!(p.str("a").unwrap().as_deref(), Some("2"));
    }

    #[test]
    fn typed_accessors_refuse_bad_values() {
        let p = Params::decode(&["amount=ten&confirm=yes&metadata=x"]);
        assert_eq!(p.int("amount").unwrap_err().code(), Some("parameter_invalid_integer"));
        assert_eq!(p.bool("confirm").unwrap_err().code(), Some("parameter_invalid_boolean"));
        assert!(p.metadata().is_err());
        assert_eq!(p.allow(&["amount"]).unwrap_err().code(), Some("parameter_unknown"));
    }

    #[test]
    fn metadata_updates_set_remove_and_clear() {
        let mut m = Metadata::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
        Params::decode(&["metadata[a]=&metadata[c]=3"])
            .metadata()
            .unwrap()
            .apply(&mut m)
            .unwrap();
        assert_eq!(
            m,
            Metadata::from([("b".to_owned(), "2".to_owned()), ("c".to_owned(), "3".to_owned())])
        );
        Params::decode(&["metadata="])
            .metadata()
            .unwrap()
            .apply(&mut m)
            .unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Bb+c%zz%", true), "a+b c%zz%");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
