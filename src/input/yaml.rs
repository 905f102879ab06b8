//! A small YAML document tree with the position of every node, built from the
//! events of `saphyr-parser` (a maintained, pure-Rust YAML 1.2 parser).
//!
//! Why not serde: the config file needs `file:line:column` for every kind of
//! error, including the ones found after parsing (a database claimed twice),
//! duplicate keys refused rather than the last one silently winning, and a
//! hard bound on what aliases may expand to. A serde deserializer gives none
//! of these reliably, so the walk from events to this tree, and from the tree
//! to typed values ([`crate::input::config`]), is ours.
//!
//! Bounds: nesting depth [`MAX_DEPTH`]; nodes after alias expansion
//! [`MAX_NODES`] (an "alias bomb" of a few hundred bytes that would expand to
//! billions of nodes fails at the first alias that crosses the bound, before
//! anything is copied); one document per file; no tags.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Deeper than any config file needs; protects the recursive walk.
pub const MAX_DEPTH: usize = 32;
/// Nodes in the document once aliases are expanded.
pub const MAX_NODES: usize = 100_000;

/// A position in the file: line and column, both counted from 1 (columns in
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar's text; `plain` when unquoted, so that `60` is a number and
    /// `"60"` a string, `null`/`~`/empty nothing.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars, unique, in file order.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// `null`, `~` or nothing at all, unquoted.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// What kind of node this is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        1 + match &self.value {
            Value::Scalar { .. } => 0,
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| 1 + v.size()).sum(),
        }
    }
}

/// A syntax error or a broken bound, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty file is `None`.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut b = Builder {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        last: Pos { line: 1, column: 1 },
    };
    b.document()
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchor id -> the node it names (with its size).
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    last: Pos,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Pos), YamlError> {
        match self.events.next() {
            Some(Ok((event, span))) => {
                let pos = Pos {
                    line: span.start.line(),
                    column: span.start.col() + 1,
                };
                self.last = pos;
                Ok((event, pos))
            }
            Some(Err(e)) => Err(YamlError {
                pos: Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: format!("invalid YAML: {}", e.info()),
            }),
            None => Err(YamlError {
                pos: self.last,
                message: "invalid YAML: unexpected end of input".into(),
            }),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let mut root = None;
        loop {
            let (event, pos) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(YamlError {
                            pos,
                            message: "a second YAML document; the config is one document".into(),
                        });
                    }
                    let (event, pos) = self.next()?;
                    root = Some(self.node(event, pos, 1)?);
                }
                _ => {
                    return Err(YamlError {
                        pos,
                        message: "invalid YAML: unexpected event".into(),
                    })
                }
            }
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: format!(
                    "the document expands to more than {MAX_NODES} nodes (through aliases?); refused"
                ),
            });
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, pos: Pos, depth: usize) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(YamlError {
                pos,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let tag_error = || YamlError {
            pos,
            message: "YAML tags are not supported here".into(),
        };
        let (node, anchor) = match event {
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                let (mut node, size) = (node.clone(), *size);
                // Counted before the copy is kept: the bound holds however
                // the aliases nest.
                self.count(size, pos)?;
                node.pos = pos;
                return Ok(node);
            }
            Event::Scalar(text, style, anchor, tag) => {
                if tag.is_some() {
                    return Err(tag_error());
                }
                self.count(1, pos)?;
                let node = Node {
                    pos,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                (node, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                if tag.is_some() {
                    return Err(tag_error());
                }
                self.count(1, pos)?;
                let mut items = Vec::new();
                loop {
                    let (event, p) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, p, depth + 1)?);
                }
                (
                    Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                if tag.is_some() {
                    return Err(tag_error());
                }
                self.count(1, pos)?;
                let mut entries: Vec<(Key, Node)> = Vec::new();
                loop {
                    let (event, kpos) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, kpos, depth + 1)?;
                    let Value::Scalar { text, .. } = key.value else {
                        return Err(YamlError {
                            pos: kpos,
                            message: "a key must be a plain name, not a list or mapping".into(),
                        });
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == text) {
                        return Err(YamlError {
                            pos: kpos,
                            message: format!(
                                "duplicate key {text:?} (first at line {} column {})",
                                first.pos.line, first.pos.column
                            ),
                        });
                    }
                    let (event, vpos) = self.next()?;
                    let value = self.node(event, vpos, depth + 1)?;
                    entries.push((Key { text, pos: kpos }, value));
                }
                (
                    Node {
                        pos,
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            _ => {
                return Err(YamlError {
                    pos,
                    message: "invalid YAML: unexpected event".into(),
                })
            }
        };
        if anchor != 0 {
            let size = node.size();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = parse(text).expect_err("invalid");
        format!("{}: {}", e.pos, e.message)
    }

    #[test]
    fn positions() {
        let root = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[1].1.pos.line, 3);
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(items[1].pos, Pos { line: 4, column: 5 });
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn empty_and_null() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert!(parse("~").unwrap().unwrap().is_null());
        assert!(!parse("'~'").unwrap().unwrap().is_null());
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(
            err("a: 1\nb: 2\na: 3\n"),
            "3:1: duplicate key \"a\" (first at line 1 column 1)"
        );
        assert!(err("a: [1, 2\n").starts_with("2:1: invalid YAML"));
        assert_eq!(
            err("a: 1\n---\nb: 2\n"),
            "2:1: a second YAML document; the config is one document"
        );
        assert_eq!(err("a: !!str x\n"), "1:4: YAML tags are not supported here");
        assert_eq!(
            err("? [a]\n: 1\n"),
            "1:3: a key must be a plain name, not a list or mapping"
        );
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(err(&deep), "1:33: nested deeper than 32 levels");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let e = parse(&text).expect_err("bomb");
        assert!(e.message.contains("more than 100000 nodes"), "{e:?}");
        assert!(e.pos.line >= 5 && e.pos.line <= 7, "{e:?}");
        // Small aliases are fine.
        let root = parse("a: &x [1]\nb: *x\n").unwrap().unwrap();
        assert_eq!(root.size(), 7);
    }
}
