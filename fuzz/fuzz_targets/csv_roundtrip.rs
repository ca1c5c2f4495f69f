//! CSV encoding: random cells written by the crate's CSV encoder, under Segment's options or
//! random CSV options (quote and escape characters drawn from a set that includes the
//! delimiters, to check that the loader refuses what cannot be read back), read back by the
//! `csv` crate's reader as the same values.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use s3actions_fuzz::csv_roundtrip::{DELIMITERS, Dialect, Options, round_trip};

/// Candidate quote and escape characters.
const CHARS: [u8; 9] = *b"\"'\\~,|;:a";

#[derive(Arbitrary, Debug)]
struct Input {
    delimiter: u8,
    options: Option<RawOptions>,
    columns: u8,
    cells: Vec<String>,
}

#[derive(Arbitrary, Debug)]
struct RawOptions {
    quote: u8,
    escape: Option<u8>,
    necessary: bool,
    header: bool,
    crlf: bool,
}

fn pick(set: &[u8], i: u8) -> u8 {
    set[usize::from(i) % set.len()]
}

fuzz_target!(|input: Input| {
    let dialect = Dialect {
        delimiter: pick(&DELIMITERS, input.delimiter),
        options: input.options.map(|o| Options {
            quote: pick(&CHARS, o.quote),
            escape: o.escape.map(|e| pick(&CHARS, e)),
            necessary: o.necessary,
            header: o.header,
            crlf: o.crlf,
        }),
    };
    let columns = 1 + usize::from(input.columns % 6);
    let rows: Vec<Vec<String>> = input
        .cells
        .chunks(columns)
        .map(|chunk| {
            let mut row = chunk.to_vec();
            row.resize(columns, String::new());
            row
        })
        .collect();
    if let Err(e) = round_trip(&dialect, columns, &rows) {
        panic!("{dialect:?}: {e}");
    }
});
