//! Strict PEM framing.
//!
//! `rustls::pki_types::pem` decodes a block but skips what it does not recognise. A certs folder
//! must not hide anything, so this module finds the blocks itself, records where each one starts,
//! and rejects truncated blocks and data after the last block before it hands each block to
//! `PemObject` for decoding.

use rustls::pki_types::pem::{PemObject, SectionKind};

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label between `-----BEGIN ` and `-----`, for example `CERTIFICATE`.
    pub label: String,
    /// The decoded DER bytes.
    pub der: Vec<u8>,
    /// Byte offset of the `-----BEGIN` line in the file.
    pub offset: usize,
}

/// Errors in the framing or encoding of a PEM file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The file has no bytes, or only whitespace.
    #[error("the file is empty")]
    Empty,
    /// The file has content but no `-----BEGIN` line.
    #[error("the file is not PEM: no '-----BEGIN' line was found")]
    NotPem,
    /// A block starts but its END line is missing.
    #[error("PEM block {block} ({label}) at byte {offset} is incomplete: its END line is missing")]
    Truncated {
        /// 1-based index of the block in the file.
        block: usize,
        /// Label of the incomplete block.
        label: String,
        /// Byte offset of its BEGIN line.
        offset: usize,
    },
    /// A block's END label differs from its BEGIN label.
    #[error("PEM block {block} at byte {offset} begins as {begin} but ends as {end}")]
    MismatchedEnd {
        /// 1-based index of the block in the file.
        block: usize,
        /// Byte offset of its BEGIN line.
        offset: usize,
        /// Label of the BEGIN line.
        begin: String,
        /// Label of the END line.
        end: String,
    },
    /// A BEGIN or END line is malformed.
    #[error("malformed PEM line at byte {offset}: {line:?}")]
    MalformedLine {
        /// Byte offset of the line.
        offset: usize,
        /// The line, lossily decoded.
        line: String,
    },
    /// A block's body is not valid base64, or carries headers (legacy encrypted keys).
    #[error("PEM block {block} ({label}) at byte {offset} is not valid base64: {reason}")]
    InvalidBase64 {
        /// 1-based index of the block in the file.
        block: usize,
        /// Label of the block.
        label: String,
        /// Byte offset of its BEGIN line.
        offset: usize,
        /// The reason the decoder gave.
        reason: String,
    },
    /// Non-whitespace data follows the last block.
    #[error("unexpected data after the last PEM block at byte {offset}")]
    TrailingData {
        /// Byte offset of the first non-whitespace byte after the last END line.
        offset: usize,
    },
}

/// Splits `bytes` into decoded PEM blocks.
///
/// Text before a BEGIN line is allowed (OpenSSL writes "Bag Attributes" there), and so is
/// whitespace anywhere between blocks. Any other data after the last block is an error.
///
/// # Errors
///
/// Returns a [`PemError`] that names where the framing or encoding is wrong.
pub fn parse_blocks(bytes: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PemError::Empty);
    }
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize)> = None;
    let mut end_of_last_block = 0;
    let mut offset = 0;
    for raw_line in bytes.split_inclusive(|byte| *byte == b'\n') {
        let line_offset = offset;
        offset += raw_line.len();
        let line = trim_line_end(raw_line);
        if let Some(label) = marker_label(line, b"-----BEGIN ") {
            let label = label.ok_or_else(|| malformed(line_offset, line))?;
            if let Some((open_label, open_offset)) = open.take() {
                return Err(PemError::Truncated {
                    block: blocks.len() + 1,
                    label: open_label,
                    offset: open_offset,
                });
            }
            open = Some((label, line_offset));
        } else if let Some(label) = marker_label(line, b"-----END ") {
            let label = label.ok_or_else(|| malformed(line_offset, line))?;
            let Some((begin_label, begin_offset)) = open.take() else {
                return Err(malformed(line_offset, line));
            };
            if label != begin_label {
                return Err(PemError::MismatchedEnd {
                    block: blocks.len() + 1,
                    offset: begin_offset,
                    begin: begin_label,
                    end: label,
                });
            }
            let text = &bytes[begin_offset..offset];
            let der = decode_block(text, &begin_label, blocks.len() + 1, begin_offset)?;
            blocks.push(PemBlock {
                label: begin_label,
                der,
                offset: begin_offset,
            });
            end_of_last_block = offset;
        }
    }
    if let Some((label, offset)) = open {
        return Err(PemError::Truncated {
            block: blocks.len() + 1,
            label,
            offset,
        });
    }
    if blocks.is_empty() {
        return Err(PemError::NotPem);
    }
    let tail = &bytes[end_of_last_block..];
    if let Some(position) = tail.iter().position(|byte| !byte.is_ascii_whitespace()) {
        return Err(PemError::TrailingData {
            offset: end_of_last_block + position,
        });
    }
    Ok(blocks)
}

/// Returns `Some(Some(label))` for a well-formed marker line, `Some(None)` for a malformed one
/// and `None` when the line is not a marker of this kind.
fn marker_label(line: &[u8], prefix: &[u8]) -> Option<Option<String>> {
    let rest = line.strip_prefix(prefix)?;
    let label = rest
        .strip_suffix(b"-----")
        .and_then(|label| std::str::from_utf8(label).ok());
    Some(label.filter(|label| !label.is_empty()).map(str::to_owned))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|byte| !byte.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

fn malformed(offset: usize, line: &[u8]) -> PemError {
    PemError::MalformedLine {
        offset,
        line: String::from_utf8_lossy(line).into_owned(),
    }
}

/// Decodes one block's text with `PemObject`. The block is rebuilt from its trimmed lines under
/// a label rustls decodes, so the decoder reads the same lines this module framed. A tab after
/// a marker is therefore whitespace. A `\r` inside a line is rejected, because the decoder would
/// treat it as a line break that could hide a second END marker. Labels rustls does not decode
/// (for example `EC PARAMETERS` or `ENCRYPTED PRIVATE KEY`) are decoded the same way and kept,
/// so the caller can name them.
fn decode_block(
    text: &[u8],
    label: &str,
    block: usize,
    offset: usize,
) -> Result<Vec<u8>, PemError> {
    let invalid = |reason: String| PemError::InvalidBase64 {
        block,
        label: label.to_owned(),
        offset,
        reason,
    };
    let mut lines: Vec<&[u8]> = text
        .split(|byte| *byte == b'\n')
        .map(trim_line_end)
        .collect();
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    // The first line is BEGIN and the last END; the body lies between.
    let body = lines
        .get(1..lines.len().saturating_sub(1))
        .unwrap_or_default();
    let mut canonical = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in body {
        if line.contains(&b'\r') {
            return Err(invalid(
                "a line contains a carriage return before its end".to_owned(),
            ));
        }
        canonical.extend_from_slice(line);
        canonical.push(b'\n');
    }
    canonical.extend_from_slice(b"-----END CERTIFICATE-----\n");
    let (_, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(&canonical)
        .map_err(|error| invalid(error.to_string()))?;
    Ok(der)
}

/// Encodes DER bytes as one PEM block with 64-column lines.
pub fn encode_block(label: &str, der: &[u8]) -> String {
    let encoded = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(label: &str, der: &[u8]) -> String {
        encode_block(label, der)
    }

    #[test]
    fn round_trip_two_blocks() {
        let text = format!(
            "{}{}",
            block("CERTIFICATE", b"one"),
            block("CERTIFICATE", b"two!")
        );
        let blocks = parse_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, b"one");
        assert_eq!(blocks[1].der, b"two!");
        assert_eq!(blocks[1].offset, block("CERTIFICATE", b"one").len());
    }

    #[test]
    fn empty_and_whitespace_files() {
        assert_eq!(parse_blocks(b""), Err(PemError::Empty));
        assert_eq!(parse_blocks(b" \n\r\n"), Err(PemError::Empty));
    }

    #[test]
    fn random_bytes_are_not_pem() {
        assert_eq!(parse_blocks(b"\x01\x02garbage"), Err(PemError::NotPem));
    }

    #[test]
    fn whitespace_around_blocks_is_fine() {
        let text = format!("\n\n{}  \r\n\n", block("CERTIFICATE", b"abc"));
        assert_eq!(parse_blocks(text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn leading_text_is_fine() {
        let text = format!(
            "Bag Attributes\n    localKeyID: 01\n{}",
            block("CERTIFICATE", b"abc")
        );
        assert_eq!(parse_blocks(text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn trailing_text_is_rejected_with_offset() {
        let first = block("CERTIFICATE", b"abc");
        let text = format!("{first}garbage\n");
        assert_eq!(
            parse_blocks(text.as_bytes()),
            Err(PemError::TrailingData {
                offset: first.len()
            })
        );
    }

    #[test]
    fn missing_end_line_is_truncated() {
        let first = block("CERTIFICATE", b"abc");
        let second = block("CERTIFICATE", b"defghi");
        let cut = second.rfind("-----END").unwrap();
        let text = format!("{first}{}", &second[..cut]);
        let error = parse_blocks(text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, PemError::Truncated { block: 2, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn trailing_space_after_begin_is_fine() {
        let text = block("CERTIFICATE", b"abc").replacen("-----\n", "----- \n", 1);
        assert_eq!(parse_blocks(text.as_bytes()).unwrap()[0].der, b"abc");
    }

    #[test]
    fn unknown_labels_are_kept() {
        let text = format!(
            "{}{}",
            block("EC PARAMETERS", b"\x06\x08"),
            block("PRIVATE KEY", b"k")
        );
        let blocks = parse_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks[0].label, "EC PARAMETERS");
        assert_eq!(blocks[0].der, b"\x06\x08");
        assert_eq!(blocks[1].label, "PRIVATE KEY");
    }

    #[test]
    fn legacy_encrypted_headers_are_invalid_base64() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                    DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let error = parse_blocks(text.as_bytes()).unwrap_err();
        assert!(matches!(error, PemError::InvalidBase64 { .. }), "{error:?}");
    }
}
