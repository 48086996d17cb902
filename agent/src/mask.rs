//! Hides the values of the credentials a run may see in its output before the output leaves the
//! host. Output is read from files, so a read that ends inside what may be the start of a secret
//! stops before it: the rest is read again with what follows, and a secret split across two
//! chunks is still found whole.

use std::borrow::Cow;

/// Masks every secret in `buf` with as many `*` as it has bytes (offsets stay those of the file).
/// Returns the bytes to emit and how many of `buf` they stand for; unless `at_end`, a tail that
/// may be the start of a secret is left for the next read.
/// Without secrets the bytes are handed back as they are, uncopied.
pub fn mask<'a>(buf: &'a [u8], secrets: &[String], at_end: bool) -> (Cow<'a, [u8]>, usize) {
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() {
        return (Cow::Borrowed(buf), buf.len());
    }
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while i < buf.len() {
        if !at_end && secrets.iter().any(|s| s.len() > buf.len() - i && s.starts_with(&buf[i..])) {
            // What is left may be a secret (or a longer one) cut by the end of this read.
            return (Cow::Owned(out), i);
        }
        // The longest secret that starts here wins.
        let hit = secrets.iter().filter(|s| buf[i..].starts_with(s)).map(|s| s.len()).max();
        if let Some(len) = hit {
            out.extend(std::iter::repeat_n(b'*', len));
            i += len;
            continue;
        }
        out.push(buf[i]);
        i += 1;
    }
    (Cow::Owned(out), buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_place() {
        let s = vec!["hunter2".to_string(), "p@ss".to_string()];
        let (out, n) = mask(b"user=admin pw=hunter2 other=p@ss!", &s, false);
        assert_eq!(String::from_utf8(out.into_owned()).unwrap(), "user=admin pw=******* other=****!");
        assert_eq!(n, 33);
        let (out, n) = mask(b"no secrets", &[], false);
        assert_eq!((&*out, n), (&b"no secrets"[..], 10));
    }

    /// Feeds a text through reads cut at every position, as the agent reads a growing file.
    fn through_reads(text: &str, secrets: &[String], cut: usize) -> String {
        let bytes = text.as_bytes();
        let mut shown = Vec::new();
        let mut offset = 0;
        let mut available = cut.min(bytes.len());
        loop {
            let at_end = available == bytes.len();
            let (out, used) = mask(&bytes[offset..available], secrets, at_end);
            shown.extend_from_slice(&out);
            offset += used;
            if at_end && offset == bytes.len() {
                break;
            }
            available = bytes.len();
        }
        String::from_utf8(shown).unwrap()
    }

    #[test]
    fn a_secret_across_a_chunk_boundary_is_masked() {
        let secrets = vec!["s3cr3t-Value".to_string(), "s3cr3t".to_string()];
        let text = "before s3cr3t-Value middle s3cr3t after s3cr";
        for cut in 0..=text.len() {
            assert_eq!(
                through_reads(text, &secrets, cut),
                "before ************ middle ****** after s3cr",
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_possible_start_is_held_back_only_until_the_end() {
        let s = vec!["abcdef".to_string()];
        assert_eq!(mask(b"xx abc", &s, false), (Cow::Borrowed(&b"xx "[..]), 3));
        assert_eq!(mask(b"xx abc", &s, true), (Cow::Borrowed(&b"xx abc"[..]), 6));
        assert_eq!(mask(b"abcdeX", &s, false), (Cow::Borrowed(&b"abcdeX"[..]), 6));
    }
}
