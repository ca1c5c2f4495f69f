//! The parts of an event a run can read.
//!
//! Most of an event's bytes sit in subtrees nobody looks inside: `context.library`,
//! `context.page`, the members of `properties` when the whole object is one column. Such a
//! subtree still has to be validated (a broken event is rejected, not half-written) and its
//! canonical flag computed (it is copied byte for byte when canonical), but it needs no
//! nodes. A [`Shape`] lists, as a tree of keys, the members whose insides are read; the
//! parser ([`Tape::parse_shaped`](super::Tape::parse_shaped)) gives every other container
//! a single *lazy* node. The shape is derived from the compiled mapping (triggers, column
//! paths, folder templates); anything the derivation cannot see through makes it
//! [`Shape::all`], the full parse.

use super::tape::short_eq;

/// A tree of object keys whose members are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Everything under this node is read: parse it fully.
    all: bool,
    /// Every member of this object is read (as a value; their insides are not).
    any_key: bool,
    /// The value is printed with JavaScript's `String()`, which joins an array's elements:
    /// an array here is parsed. Otherwise a value read as a whole is only printed as JSON,
    /// tested for presence or type, which a lazy node answers.
    joined: bool,
    /// Members read by name, with what is read inside them.
    children: Vec<(Box<[u8]>, Shape)>,
}

pub(super) static LEAF: Shape = Shape {
    all: false,
    any_key: false,
    joined: false,
    children: Vec::new(),
};

pub(super) static ALL: Shape = Shape {
    all: true,
    any_key: false,
    joined: false,
    children: Vec::new(),
};

impl Shape {
    /// Nothing read inside: an object here becomes one lazy node.
    pub fn leaf() -> Shape {
        Shape::default()
    }

    /// The full parse.
    pub fn all() -> Shape {
        Shape {
            all: true,
            ..Shape::default()
        }
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Reads everything under this node.
    pub fn set_all(&mut self) {
        self.all = true;
        self.any_key = false;
        self.children = Vec::new();
    }

    /// Adds the path `keys` (object keys from this node down); returns its last node, so a
    /// caller can mark what is read below it.
    pub fn path<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) -> &mut Shape {
        let mut cur = self;
        for key in keys {
            if cur.all {
                return cur;
            }
            let at = match cur
                .children
                .iter()
                .position(|(k, _)| **k == *key.as_bytes())
            {
                Some(i) => i,
                None => {
                    cur.children.push((key.as_bytes().into(), Shape::leaf()));
                    cur.children.len() - 1
                }
            };
            cur = &mut cur.children[at].1;
        }
        cur
    }

    /// The value is printed as text (`String(value)`).
    pub fn set_joined(&mut self) {
        self.joined = true;
    }

    /// Reads every member of this object (by a key only known per event).
    pub fn set_any_key(&mut self) {
        if !self.all {
            self.any_key = true;
        }
    }

    /// Reads what `other` reads too.
    pub fn merge(&mut self, other: &Shape) {
        if self.all {
            return;
        }
        if other.all {
            self.set_all();
            return;
        }
        self.any_key |= other.any_key;
        self.joined |= other.joined;
        for (key, sub) in &other.children {
            match self.children.iter_mut().find(|(k, _)| k == key) {
                Some((_, mine)) => mine.merge(sub),
                None => self.children.push((key.clone(), sub.clone())),
            }
        }
    }

    /// Whether an object here gets nodes for its members.
    #[inline]
    pub(super) fn descends(&self) -> bool {
        self.all || self.any_key || !self.children.is_empty()
    }

    /// Whether an array here gets nodes for its elements (then all of them, fully).
    #[inline]
    pub(super) fn reads_elements(&self) -> bool {
        self.joined || self.descends()
    }

    /// What is read inside the member `key` (its raw bytes, `escaped` when they hold
    /// escapes); `None` when nothing is, so the member can be lazy.
    #[inline]
    pub(super) fn child(&self, key: &[u8], escaped: bool) -> Option<&Shape> {
        if self.all {
            return Some(&ALL);
        }
        if escaped && !self.children.is_empty() {
            // Rare enough not to decode: read it all.
            return Some(&ALL);
        }
        for (k, sub) in &self.children {
            if k.len() == key.len() && short_eq(k, key) {
                return Some(sub);
            }
        }
        self.any_key.then_some(&LEAF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_merge_into_a_tree() {
        let mut s = Shape::leaf();
        s.path(["context", "traits", "email"]);
        s.path(["context", "personas"]).set_any_key();
        s.path(["type"]);
        assert!(s.descends());
        let context = s.child(b"context", false).unwrap();
        assert!(context.child(b"page", false).is_none());
        assert!(
            !context
                .child(b"traits", false)
                .unwrap()
                .child(b"email", false)
                .unwrap()
                .descends()
        );
        let personas = context.child(b"personas", false).unwrap();
        assert!(personas.child(b"anything", false).is_some());
        assert!(s.child(b"properties", false).is_none());
        assert!(s.child(b"type", true).unwrap().is_all());

        let mut other = Shape::leaf();
        other.path(["properties"]).set_all();
        s.merge(&other);
        assert!(s.child(b"properties", false).unwrap().is_all());
        s.merge(&Shape::all());
        assert!(s.is_all());
        s.path(["x"]);
        assert!(s.children.is_empty());
    }
}
