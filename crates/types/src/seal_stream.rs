//! Content encrypted in independently authenticated chunks, so it can be decrypted while it
//! downloads and read at any range: the STREAM construction (Hoang, Reyhanitabar, Rogaway,
//! Vizár, 2015) over XChaCha20-Poly1305.
//!
//! Layout: a header of [`MAGIC`] and a random 19-byte nonce prefix, then chunks of [`CHUNK`]
//! plaintext bytes each sealed with its own 16-byte tag (the last chunk holds 0 to [`CHUNK`]
//! bytes; an empty plaintext is one empty last chunk). Chunk `i` is sealed under the nonce
//! `prefix ‖ i (u32, big-endian) ‖ last flag (1 byte)`, so a chunk moved to another position
//! (reordering), taken from another stream (another prefix), or made the last one (truncation)
//! fails its tag, and so does a chunk the stream is cut inside.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use std::io::{self, Read, Seek, SeekFrom};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// Bytes of the random nonce prefix in the header.
pub const PREFIX: usize = 19;
/// Marks a chunked ciphertext, and its format version.
pub const MAGIC: &[u8; 5] = b"aics1";
/// Bytes before the first chunk.
pub const HEADER: usize = MAGIC.len() + PREFIX;
/// Bytes of a full chunk once sealed.
pub const SEALED_CHUNK: usize = CHUNK + TAG;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("not a chunked ciphertext: the header is missing or of another format")]
    Header,
    #[error(
        "chunk {0} does not authenticate: altered, moved, from another stream, or the stream \
         was cut"
    )]
    Chunk(u64),
    #[error("the ciphertext has more chunks than the format can number")]
    TooLong,
    #[error("bytes {start}..{end} are not within the {size} bytes of plaintext")]
    Range { start: u64, end: u64, size: u64 },
    #[error("reading or writing the stream: {0}")]
    Io(String),
}

impl From<StreamError> for io::Error {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Io(message) => io::Error::other(message),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

fn io_error(error: io::Error) -> StreamError {
    StreamError::Io(error.to_string())
}

fn nonce(prefix: &[u8; PREFIX], index: u64, last: bool) -> Result<XNonce, StreamError> {
    let index = u32::try_from(index).map_err(|_| StreamError::TooLong)?;
    let mut nonce = [0u8; 24];
    nonce[..PREFIX].copy_from_slice(prefix);
    nonce[PREFIX..PREFIX + 4].copy_from_slice(&index.to_be_bytes());
    nonce[23] = u8::from(last);
    Ok(XNonce::from(nonce))
}

/// Encrypts all of `plaintext` into a new buffer, under a fresh random nonce prefix.
pub fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let size = plaintext.len() as u64;
    let mut sealed = Vec::new();
    SealingReader::new(key, random_prefix(), io::Cursor::new(plaintext), size)
        .read_to_end(&mut sealed)
        .expect("reading from memory cannot fail");
    sealed
}

/// Decrypts what it reads from a chunked ciphertext, one chunk at a time, checking each before
/// handing out a byte of it; fails (`InvalidData`, a [`StreamError`] inside) on the first chunk
/// that does not authenticate, and at the end of a stream whose last chunk is missing.
pub struct Decryptor<R: Read> {
    reader: R,
    cipher: XChaCha20Poly1305,
    prefix: Option<[u8; PREFIX]>,
    index: u64,
    /// Ciphertext read ahead: up to one sealed chunk and one byte (which shows it is not last).
    sealed: Vec<u8>,
    plain: Vec<u8>,
    position: usize,
    done: bool,
}

impl<R: Read> Decryptor<R> {
    pub fn new(key: &[u8; 32], reader: R) -> Decryptor<R> {
        Decryptor {
            reader,
            cipher: XChaCha20Poly1305::new(&Key::from(*key)),
            prefix: None,
            index: 0,
            sealed: Vec::with_capacity(SEALED_CHUNK + 1),
            plain: Vec::with_capacity(SEALED_CHUNK),
            position: 0,
            done: false,
        }
    }

    /// Reads until `sealed` holds `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        let mut buffer = [0u8; 16 * 1024];
        while self.sealed.len() < want {
            let room = (want - self.sealed.len()).min(buffer.len());
            match self.reader.read(&mut buffer[..room]) {
                Ok(0) => break,
                Ok(n) => self.sealed.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let prefix = match self.prefix {
            Some(prefix) => prefix,
            None => {
                self.fill(HEADER)?;
                if self.sealed.len() < HEADER || &self.sealed[..MAGIC.len()] != MAGIC {
                    return Err(StreamError::Header.into());
                }
                let mut prefix = [0u8; PREFIX];
                prefix.copy_from_slice(&self.sealed[MAGIC.len()..HEADER]);
                self.sealed.drain(..HEADER);
                self.prefix = Some(prefix);
                prefix
            }
        };
        self.fill(SEALED_CHUNK + 1)?;
        let last = self.sealed.len() <= SEALED_CHUNK;
        let length = self.sealed.len().min(SEALED_CHUNK);
        if length < TAG {
            return Err(StreamError::Chunk(self.index).into());
        }
        self.plain.clear();
        self.plain.extend_from_slice(&self.sealed[..length - TAG]);
        let tag = Tag::clone_from_slice(&self.sealed[length - TAG..length]);
        self.sealed.drain(..length);
        self.cipher
            .decrypt_in_place_detached(
                &nonce(&prefix, self.index, last)?,
                &[],
                &mut self.plain,
                &tag,
            )
            .map_err(|_| StreamError::Chunk(self.index))?;
        self.index += 1;
        self.position = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.plain.len() - self.position);
        buf[..n].copy_from_slice(&self.plain[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// Decrypts all of a chunked ciphertext in memory.
pub fn decrypt(key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut plain = Vec::new();
    Decryptor::new(key, sealed).read_to_end(&mut plain).map_err(|error| {
        match error.into_inner().and_then(|inner| inner.downcast::<StreamError>().ok()) {
            Some(error) => *error,
            None => StreamError::Io("reading from memory".into()),
        }
    })?;
    Ok(plain)
}

/// Bytes of the chunked ciphertext of `plaintext_size` bytes.
pub fn sealed_size(plaintext_size: u64) -> u64 {
    let chunks = plaintext_size.div_ceil(CHUNK as u64).max(1);
    HEADER as u64 + plaintext_size + chunks * TAG as u64
}

/// The chunked ciphertext of a seekable plaintext of known size, sealed as it is read under a
/// given nonce prefix, and itself seekable: the same key, prefix and plaintext give the same
/// bytes at every offset, so an upload of it can resume anywhere. Holds one chunk.
pub struct SealingReader<R: Read + Seek> {
    source: R,
    cipher: XChaCha20Poly1305,
    prefix: [u8; PREFIX],
    plaintext_size: u64,
    position: u64,
    /// The sealed chunk at `sealed_index`, tag included.
    sealed: Vec<u8>,
    sealed_index: Option<u64>,
}

impl<R: Read + Seek> SealingReader<R> {
    pub fn new(key: &[u8; 32], prefix: [u8; PREFIX], source: R, plaintext_size: u64) -> Self {
        SealingReader {
            source,
            cipher: XChaCha20Poly1305::new(&Key::from(*key)),
            prefix,
            plaintext_size,
            position: 0,
            sealed: Vec::with_capacity(SEALED_CHUNK),
            sealed_index: None,
        }
    }

    fn seal_chunk(&mut self, index: u64) -> io::Result<()> {
        let start = index * CHUNK as u64;
        let length = (self.plaintext_size - start).min(CHUNK as u64);
        let last = start + length == self.plaintext_size;
        self.source.seek(SeekFrom::Start(start))?;
        self.sealed.clear();
        (&mut self.source).take(length).read_to_end(&mut self.sealed)?;
        if self.sealed.len() as u64 != length {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the plaintext shrank"));
        }
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(&self.prefix, index, last)?, &[], &mut self.sealed)
            .map_err(|_| io::Error::other("a chunk of 64 KiB always encrypts"))?;
        self.sealed.extend_from_slice(&tag);
        self.sealed_index = Some(index);
        Ok(())
    }
}

impl<R: Read + Seek> Read for SealingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let header = HEADER as u64;
        if self.position < header {
            let mut head = [0u8; HEADER];
            head[..MAGIC.len()].copy_from_slice(MAGIC);
            head[MAGIC.len()..].copy_from_slice(&self.prefix);
            let from = self.position as usize;
            let n = buf.len().min(HEADER - from);
            buf[..n].copy_from_slice(&head[from..from + n]);
            self.position += n as u64;
            return Ok(n);
        }
        if self.position >= sealed_size(self.plaintext_size) {
            return Ok(0);
        }
        let index = (self.position - header) / SEALED_CHUNK as u64;
        if self.sealed_index != Some(index) {
            self.seal_chunk(index)?;
        }
        let from = ((self.position - header) % SEALED_CHUNK as u64) as usize;
        let n = buf.len().min(self.sealed.len() - from);
        buf[..n].copy_from_slice(&self.sealed[from..from + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealingReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let end = sealed_size(self.plaintext_size);
        let position = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => end.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

/// The nonce prefix of the chunked ciphertext that starts with `head`; `None` when `head` does
/// not start with a header.
pub fn prefix_of(head: &[u8]) -> Option<[u8; PREFIX]> {
    if head.len() < HEADER || &head[..MAGIC.len()] != MAGIC {
        return None;
    }
    head[MAGIC.len()..HEADER].try_into().ok()
}

/// A fresh random nonce prefix.
pub fn random_prefix() -> [u8; PREFIX] {
    let mut prefix = [0u8; PREFIX];
    OsRng.fill_bytes(&mut prefix);
    prefix
}

/// Chunks and plaintext bytes of a chunked ciphertext of `sealed_size` bytes.
fn shape(sealed_size: u64) -> Result<(u64, u64), StreamError> {
    let body = sealed_size.checked_sub(HEADER as u64).ok_or(StreamError::Header)?;
    let chunks = body.div_ceil(SEALED_CHUNK as u64).max(1);
    let last = body - (chunks - 1) * SEALED_CHUNK as u64;
    if last < TAG as u64 {
        return Err(StreamError::Chunk(chunks - 1));
    }
    Ok((chunks, body - chunks * TAG as u64))
}

/// Plaintext bytes of a chunked ciphertext of `sealed_size` bytes.
pub fn plaintext_size(sealed_size: u64) -> Result<u64, StreamError> {
    Ok(shape(sealed_size)?.1)
}

/// Decrypts plaintext bytes `start..start + length` of the chunked ciphertext in `source`, of
/// `sealed_size` bytes, reading and checking only the chunks that hold them. A size that lies
/// makes a chunk read as last that was not sealed last, or the reverse, and fails its tag.
pub fn read_range<R: Read + Seek>(
    key: &[u8; 32],
    mut source: R,
    sealed_size: u64,
    start: u64,
    length: u64,
) -> Result<Vec<u8>, StreamError> {
    let (chunks, size) = shape(sealed_size)?;
    let end = start.checked_add(length).filter(|end| *end <= size);
    let Some(end) = end else {
        return Err(StreamError::Range { start, end: start.saturating_add(length), size });
    };
    let mut header = [0u8; HEADER];
    source.seek(SeekFrom::Start(0)).map_err(io_error)?;
    source.read_exact(&mut header).map_err(|_| StreamError::Header)?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(StreamError::Header);
    }
    let mut prefix = [0u8; PREFIX];
    prefix.copy_from_slice(&header[MAGIC.len()..]);
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut out = Vec::with_capacity(length as usize);
    let mut chunk = Vec::with_capacity(SEALED_CHUNK);
    let first = start / CHUNK as u64;
    let last = if length == 0 { first } else { (end - 1) / CHUNK as u64 };
    for index in first..=last.min(chunks - 1) {
        let offset = HEADER as u64 + index * SEALED_CHUNK as u64;
        let sealed_length = (sealed_size - offset).min(SEALED_CHUNK as u64) as usize;
        chunk.resize(sealed_length, 0);
        source.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        source.read_exact(&mut chunk).map_err(|_| StreamError::Chunk(index))?;
        let tag = Tag::clone_from_slice(&chunk[sealed_length - TAG..]);
        chunk.truncate(sealed_length - TAG);
        let is_last = index == chunks - 1;
        cipher
            .decrypt_in_place_detached(&nonce(&prefix, index, is_last)?, &[], &mut chunk, &tag)
            .map_err(|_| StreamError::Chunk(index))?;
        let chunk_start = index * CHUNK as u64;
        let from = start.max(chunk_start) - chunk_start;
        let to = end.min(chunk_start + chunk.len() as u64) - chunk_start;
        out.extend_from_slice(&chunk[from as usize..to as usize]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const KEY: [u8; 32] = [7; 32];

    fn plaintext(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i % 253) as u8 ^ (i >> 16) as u8).collect()
    }

    fn chunk_range(index: usize) -> std::ops::Range<usize> {
        HEADER + index * SEALED_CHUNK..HEADER + (index + 1) * SEALED_CHUNK
    }

    #[test]
    fn any_size_round_trips_streamed_and_whole() {
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain = plaintext(size);
            let sealed = encrypt(&KEY, &plain);
            let chunks = size.div_ceil(CHUNK).max(1) as u64;
            assert_eq!(sealed.len() as u64, HEADER as u64 + size as u64 + chunks * TAG as u64);
            assert_eq!(sealed_size(size as u64), sealed.len() as u64);
            assert_eq!(plaintext_size(sealed.len() as u64), Ok(size as u64));
            assert_eq!(decrypt(&KEY, &sealed), Ok(plain.clone()), "{size} bytes");
            // Read through a reader that hands out a few bytes at a time, as a network does.
            struct Trickle<'a>(&'a [u8]);
            impl Read for Trickle<'_> {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    let n = buf.len().min(self.0.len()).min(1000);
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let mut streamed = Vec::new();
            Decryptor::new(&KEY, Trickle(&sealed)).read_to_end(&mut streamed).expect("decrypts");
            assert_eq!(streamed, plain);
        }
    }

    #[test]
    fn two_encryptions_of_the_same_content_differ() {
        assert_ne!(encrypt(&KEY, b"same"), encrypt(&KEY, b"same"));
    }

    #[test]
    fn truncation_at_a_chunk_boundary_or_inside_a_chunk_is_detected() {
        let sealed = encrypt(&KEY, &plaintext(3 * CHUNK + 100));
        // The last chunk dropped: chunk 2, sealed as not last, now reads as last.
        let dropped_last = &sealed[..chunk_range(2).end];
        assert_eq!(decrypt(&KEY, dropped_last), Err(StreamError::Chunk(2)));
        // Two chunks dropped, and a cut in the middle of one.
        assert_eq!(decrypt(&KEY, &sealed[..chunk_range(1).end]), Err(StreamError::Chunk(1)));
        assert_eq!(
            decrypt(&KEY, &sealed[..chunk_range(1).start + 500]),
            Err(StreamError::Chunk(1))
        );
        // Only the header left, or less.
        assert_eq!(decrypt(&KEY, &sealed[..HEADER]), Err(StreamError::Chunk(0)));
        assert_eq!(decrypt(&KEY, &sealed[..HEADER - 1]), Err(StreamError::Header));
        // A stream whose plaintext ends on a chunk boundary, cut after its first chunk.
        let even = encrypt(&KEY, &plaintext(2 * CHUNK));
        assert_eq!(decrypt(&KEY, &even[..chunk_range(0).end]), Err(StreamError::Chunk(0)));
    }

    #[test]
    fn reordered_and_swapped_chunks_are_detected() {
        let plain = plaintext(4 * CHUNK);
        let sealed = encrypt(&KEY, &plain);
        let mut reordered = sealed.clone();
        let (first, second) = (sealed[chunk_range(1)].to_vec(), sealed[chunk_range(2)].to_vec());
        reordered[chunk_range(1)].copy_from_slice(&second);
        reordered[chunk_range(2)].copy_from_slice(&first);
        assert_eq!(decrypt(&KEY, &reordered), Err(StreamError::Chunk(1)));
        // A chunk from another stream under the same key, at the same position.
        let other = encrypt(&KEY, &plain);
        let mut swapped = sealed.clone();
        swapped[chunk_range(2)].copy_from_slice(&other[chunk_range(2)]);
        assert_eq!(decrypt(&KEY, &swapped), Err(StreamError::Chunk(2)));
        // A stream's chunks under another stream's header (its nonce prefix).
        let mut reheaded = sealed.clone();
        reheaded[..HEADER].copy_from_slice(&other[..HEADER]);
        assert_eq!(decrypt(&KEY, &reheaded), Err(StreamError::Chunk(0)));
        // A flipped bit, and the wrong key.
        let mut flipped = sealed.clone();
        flipped[chunk_range(3).start + 9] ^= 1;
        assert_eq!(decrypt(&KEY, &flipped), Err(StreamError::Chunk(3)));
        assert_eq!(decrypt(&[8; 32], &sealed), Err(StreamError::Chunk(0)));
        // Bytes handed out before the bad chunk are only those of chunks that authenticated.
        let mut reader = Decryptor::new(&KEY, flipped.as_slice());
        let mut got = Vec::new();
        assert!(reader.read_to_end(&mut got).is_err());
        assert_eq!(got, plain[..3 * CHUNK]);
    }

    #[test]
    fn ranges_read_only_their_chunks_and_check_them() {
        let plain = plaintext(5 * CHUNK + 1234);
        let sealed = encrypt(&KEY, &plain);
        let size = sealed.len() as u64;
        for (start, length) in [
            (0, 0),
            (0, 10),
            (CHUNK as u64 - 5, 10),
            (2 * CHUNK as u64, CHUNK as u64),
            (5 * CHUNK as u64 + 1000, 234),
            (0, plain.len() as u64),
        ] {
            let got = read_range(&KEY, Cursor::new(&sealed), size, start, length).expect("reads");
            assert_eq!(got, plain[start as usize..(start + length) as usize], "{start}+{length}");
        }
        // A range past the end is refused; a damaged chunk fails only the ranges that touch it.
        let beyond = read_range(&KEY, Cursor::new(&sealed), size, plain.len() as u64 - 1, 2);
        assert!(matches!(beyond, Err(StreamError::Range { .. })));
        let mut damaged = sealed.clone();
        damaged[chunk_range(3).start + 1] ^= 1;
        let in_damaged = read_range(&KEY, Cursor::new(&damaged), size, 3 * CHUNK as u64, 5);
        assert_eq!(in_damaged, Err(StreamError::Chunk(3)));
        let elsewhere = read_range(&KEY, Cursor::new(&damaged), size, 0, 5).expect("reads");
        assert_eq!(elsewhere, plain[..5]);
        // A size that lies: the chunk it makes last was not sealed last.
        let short = size - SEALED_CHUNK as u64 + 10;
        let lied = read_range(&KEY, Cursor::new(&sealed), short, 4 * CHUNK as u64, 5);
        assert_eq!(lied, Err(StreamError::Chunk(4)));
        // A truncated copy read by ranges: the last chunk it still has was not sealed last.
        let cut = &sealed[..chunk_range(4).end];
        let truncated = read_range(&KEY, Cursor::new(cut), cut.len() as u64, 4 * CHUNK as u64, 5);
        assert_eq!(truncated, Err(StreamError::Chunk(4)));
    }

    /// An upload resumes by seeking the sealed source: every offset reads the same bytes as a
    /// read from the start, and the same key and prefix give the same ciphertext.
    #[test]
    fn a_sealing_reader_gives_the_same_bytes_from_any_offset() {
        let plain = plaintext(3 * CHUNK + 100);
        let size = plain.len() as u64;
        let prefix = random_prefix();
        let mut whole = Vec::new();
        SealingReader::new(&KEY, prefix, Cursor::new(&plain), size)
            .read_to_end(&mut whole)
            .expect("reads");
        assert_eq!(whole.len() as u64, sealed_size(size));
        assert_eq!(prefix_of(&whole), Some(prefix));
        assert_eq!(decrypt(&KEY, &whole), Ok(plain.clone()));
        let mut reader = SealingReader::new(&KEY, prefix, Cursor::new(&plain), size);
        for offset in [0, 3, HEADER, HEADER + 1, HEADER + SEALED_CHUNK, whole.len() - 5] {
            reader.seek(SeekFrom::Start(offset as u64)).expect("seeks");
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).expect("reads");
            assert_eq!(rest, whole[offset..], "from {offset}");
        }
        assert_eq!(prefix_of(b"plain bytes, not sealed ones"), None);
        // A source shorter than its stated size is an error, not a short ciphertext.
        let mut short = SealingReader::new(&KEY, prefix, Cursor::new(&plain[..10]), size);
        assert!(short.read_to_end(&mut Vec::new()).is_err());
    }
}
