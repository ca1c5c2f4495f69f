//! Property tests: the CSV encoder against the `csv` crate's reader, and the FQL printer
//! against the FQL parser (`parse(print(tree)) == tree`).

#[path = "support/csv_roundtrip.rs"]
mod csv_roundtrip;

use csv_roundtrip::{DELIMITERS, Dialect, Options, Outcome, round_trip};
use proptest::prelude::*;
use s3actions::trigger::{Field, MAX_DEPTH, Node, Ordering, Test, Trigger, print};
use s3actions::value::Seg;

/// Pieces of text that CSV and FQL treat specially, and some that they do not.
const PIECES: &[&str] = &[
    "\"", "'", ",", "|", ";", ":", "\t", "\n", "\r", "\r\n", "\\", "~", "*", ".", "[", "]", " ",
    "a", "bc", "0", "é", "日本", "😀", "\u{feff}", "\u{0}", "",
];

/// Text made of [`PIECES`], or any text at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(PIECES), 0..10).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

fn dialect() -> impl Strategy<Value = Dialect> {
    let options = (
        prop::sample::select(vec![b'"', b'\'']),
        prop::option::of(prop::sample::select(vec![b'\\', b'~'])),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(quote, escape, necessary, header, crlf)| Options {
            quote,
            escape,
            necessary,
            header,
            crlf,
        });
    (
        prop::sample::select(DELIMITERS.to_vec()),
        prop::option::of(options),
    )
        .prop_map(|(delimiter, options)| Dialect { delimiter, options })
}

/// A number of columns and rows of that many cells.
fn table() -> impl Strategy<Value = (usize, Vec<Vec<String>>)> {
    (1..5usize).prop_flat_map(|columns| {
        let row = prop::collection::vec(text(), columns);
        (Just(columns), prop::collection::vec(row, 0..8))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Segment's CSV and AEP's CSV options: what the encoder writes, the csv crate reads
    /// back as the same values.
    #[test]
    fn csv_rows_read_back_as_written(dialect in dialect(), (columns, rows) in table()) {
        prop_assert_eq!(round_trip(&dialect, columns, &rows), Ok(Outcome::Same));
    }
}

/// Found by fuzzing and by the test above, each now read back as written: a row of one
/// empty field under `quote_style: necessary` was an empty line (which readers skip), and a
/// leading byte order mark left unquoted at the start of a file was dropped by readers.
/// With a delimiter as the quote character the mapping is refused.
#[test]
fn csv_cases_found_by_fuzzing() {
    let necessary = |quote, escape| Dialect {
        delimiter: b',',
        options: Some(Options {
            quote,
            escape,
            necessary: true,
            header: false,
            crlf: false,
        }),
    };
    let rows = |cells: &[&str]| vec![cells.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
    for (dialect, columns, rows) in [
        (necessary(b'"', None), 1, rows(&[""])),
        (necessary(b'\'', Some(b'~')), 1, rows(&["\u{feff}x"])),
        (necessary(b'"', Some(b'"')), 2, rows(&["a\"b", ""])),
    ] {
        assert_eq!(round_trip(&dialect, columns, &rows), Ok(Outcome::Same));
    }
    let quote_is_delimiter = Dialect {
        delimiter: b':',
        options: necessary(b':', None).options,
    };
    let refused = round_trip(&quote_is_delimiter, 2, &rows(&["a:b", ""]));
    assert!(
        matches!(&refused, Ok(Outcome::Refused(e)) if e.contains("is the delimiter")),
        "{refused:?}"
    );
}

/// A path key: any text without `]` (FQL cannot write one inside a bracketed name).
fn key() -> impl Strategy<Value = Seg> {
    text()
        .prop_filter("a key", |k| !k.is_empty() && !k.contains(']'))
        .prop_map(|k| Seg::new(&k))
}

fn field() -> impl Strategy<Value = Field> {
    let path = || prop::collection::vec(key(), 1..4);
    prop_oneof![
        Just(Field::Type),
        Just(Field::Event),
        Just(Field::Name),
        Just(Field::UserId),
        path().prop_map(Field::Properties),
        path().prop_map(Field::Traits),
        path().prop_map(Field::Context),
    ]
}

/// Any number FQL can write: finite, infinite (more digits than a float holds).
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("a number", |n| !n.is_nan()),
        prop::sample::select(vec![0.0, -0.0, 1.5, -2.0, 1e21, 5e-324, f64::INFINITY]),
    ]
}

/// The tests the parser builds for `field`.
fn test_for(field: &Field) -> BoxedStrategy<Test> {
    let nullable = !matches!(field, Field::Type | Field::Event);
    let boolean = nullable && *field != Field::Name;
    let numeric = boolean && *field != Field::UserId;
    let ordering =
        prop::sample::select(vec![Ordering::Lt, Ordering::Le, Ordering::Gt, Ordering::Ge]);
    // Anything that is not a number (`> "abc"`) compares as NaN.
    let compared = prop_oneof![number(), Just(f64::NAN)];
    let mut tests = vec![
        text().prop_map(Test::StrEq).boxed(),
        text().prop_map(Test::StrNe).boxed(),
        (ordering, compared)
            .prop_map(|(o, n)| Test::Compare(o, n))
            .boxed(),
    ];
    if nullable {
        tests.push(any::<bool>().prop_map(Test::Exists).boxed());
    }
    if boolean {
        tests.push(any::<bool>().prop_map(Test::IsBool).boxed());
    }
    if numeric {
        tests.push(
            (number(), any::<bool>())
                .prop_map(|(n, neg)| Test::NumEq(n, neg))
                .boxed(),
        );
    }
    if *field != Field::Type {
        let functions = (text(), any::<bool>(), 0..3u8).prop_filter_map(
            "a suffix never ends in '*'",
            |(s, negate, f)| match f {
                0 => Some(Test::Contains(s, negate)),
                1 => Some(Test::StartsWith(s, negate)),
                _ => (!s.ends_with('*')).then_some(Test::EndsWith(s, negate)),
            },
        );
        tests.push(functions.boxed());
    }
    prop::strategy::Union::new(tests).boxed()
}

fn condition() -> impl Strategy<Value = Node> {
    field().prop_flat_map(|f| {
        let tests = test_for(&f);
        (Just(f), tests).prop_map(|(f, t)| Node::Cond(f, t))
    })
}

/// Trees as the parser builds them: groups of two or more items, a few levels deep.
fn tree() -> impl Strategy<Value = Node> {
    condition().prop_recursive(4, 24, 4, |inner| {
        (any::<bool>(), prop::collection::vec(inner, 2..5))
            .prop_map(|(any, items)| Node::Group { any, items })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fql_prints_as_text_that_parses_to_the_same_tree(tree in tree()) {
        let text = print(&tree);
        let parsed = Trigger::parse(&text).map_err(|e| format!("{text:?}: {e}"));
        prop_assert_eq!(parsed.map(|t| t.root().clone()), Ok(tree), "printed as {:?}", text);
    }
}

/// Groups nested as deeply as the parser allows print as text it accepts.
#[test]
fn the_deepest_tree_prints_and_parses_back() {
    let leaf = || Node::Cond(Field::Event, Test::StrEq("x".into()));
    let mut tree = Node::Group {
        any: true,
        items: vec![leaf(), leaf()],
    };
    for level in 0..MAX_DEPTH {
        tree = Node::Group {
            any: level % 2 == 0,
            items: vec![leaf(), tree],
        };
    }
    let text = print(&tree);
    assert_eq!(Trigger::parse(&text).unwrap().root(), &tree);
    // One more level is over the limit.
    let deeper = Node::Group {
        any: true,
        items: vec![leaf(), tree],
    };
    assert!(Trigger::parse(&print(&deeper)).is_err());
}

/// Every trigger of the conformance sample prints back to itself.
#[test]
fn conformance_triggers_print_back_to_themselves() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/fql-sample.json"
    );
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut printed = 0;
    for case in &cases {
        let Ok(t) = Trigger::parse(case["fql"].as_str().unwrap()) else {
            continue;
        };
        let text = print(t.root());
        assert_eq!(Trigger::parse(&text).unwrap().root(), t.root(), "{text}");
        printed += 1;
    }
    assert!(printed >= 30, "only {printed} triggers parsed");
}
