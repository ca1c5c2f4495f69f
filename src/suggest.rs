//! "Did you mean ...?" for misspelt keys, fields and directives.

/// The closest candidate to `word`, when it is close enough to be a plausible typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word_l = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            // Also compare with the candidate's trailing words, so "regoin" finds
            // "s3_aws_region".
            let cl = c.to_ascii_lowercase();
            let tails = cl.match_indices('_').map(|(i, _)| &cl[i + 1..]);
            let score = std::iter::once(cl.as_str())
                .chain(tails)
                .map(|t| strsim::jaro_winkler(&word_l, t))
                .fold(0.0, f64::max);
            (score, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names() {
        let keys = ["batch_size", "delimiter", "file_extension"];
        assert_eq!(did_you_mean("batchsize", keys), Some("batch_size"));
        assert_eq!(did_you_mean("delimeter", keys), Some("delimiter"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
