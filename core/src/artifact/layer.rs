//! The archive artifact's layer: a tar+gzip stream holding the one archive file.
//! It packs and unpacks streams and checks every byte against its digest; it must not decide
//! where an archive lives.

use super::{
    check_digest, check_size, ArchiveFile, ArtifactError, ANNOTATION_TITLE, LAYER_GZIP_LEVEL,
};
use crate::digest::{Digest, HashingReader, HashingWriter, Sha256Counter};
use crate::media_types;
use crate::oci::Descriptor;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

/// What packing an archive into a layer produced: the layer's descriptor, the archive's
/// uncompressed size and sha256, and the digest of the uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedLayer {
    pub descriptor: Descriptor,
    pub archive: ArchiveFile,
    /// sha256 of the tar before gzip: the `diff_id` an image config lists for this layer, so
    /// the same blob also serves as the layer of the image-volume form.
    pub diff_id: Digest,
}

/// An archive's file name must be one plain path component: the fetcher and the pod join it to
/// the archive's own directory.
pub fn check_archive_name(name: &str) -> Result<(), ArtifactError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(ArtifactError::BadArchiveName(name.to_string()));
    }
    Ok(())
}

/// Writes the layer (a tar holding the `size` bytes read from `archive` as `name`,
/// gzip-compressed) to `out`, streaming: memory stays at a few buffers whatever the archive's
/// size. The layer's digest and size and the archive's sha256 and size are computed while the
/// bytes pass; an archive that yields fewer than `size` bytes is refused.
pub fn pack_layer<R: Read, W: Write>(
    archive: R,
    size: u64,
    name: &str,
    out: W,
) -> Result<(W, PackedLayer), ArtifactError> {
    check_archive_name(name)?;
    let write_err = |source| ArtifactError::Write {
        path: PathBuf::from("<layer>"),
        source,
    };

    let counted = HashingWriter::new(out);
    let gz = flate2::write::GzEncoder::new(counted, flate2::Compression::new(LAYER_GZIP_LEVEL));
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(write_err)?;
    header.set_size(size);
    header.set_mode(0o644);
    // mtime 0 keeps the layer digest a function of the archive's bytes alone.
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut reader = HashingReader::new(archive.take(size));
    tar.append(&header, &mut reader).map_err(write_err)?;
    let (_, archive_counter) = reader.into_parts();
    if archive_counter.len() != size {
        return Err(ArtifactError::ArchiveChanged {
            name: name.to_string(),
            expected: size,
            actual: archive_counter.len(),
        });
    }
    let (gz, tar_counter) = tar.into_inner().map_err(write_err)?.into_parts();
    let counted = gz.finish().map_err(write_err)?;
    let (out, layer_counter) = counted.into_parts();
    let layer_size = layer_counter.len();
    let mut descriptor = Descriptor::new(
        media_types::ARCHIVE_LAYER,
        layer_counter.finish_digest(),
        layer_size,
    );
    descriptor
        .annotations
        .insert(ANNOTATION_TITLE.to_string(), name.to_string());
    Ok((
        out,
        PackedLayer {
            descriptor,
            archive: ArchiveFile {
                name: name.to_string(),
                size,
                sha256: archive_counter.finish_hex(),
            },
            diff_id: tar_counter.finish_digest(),
        },
    ))
}

/// Reads a layer from `layer` (streamed, one pass) and writes its archive file to `out`,
/// checking the layer descriptor's digest and size and the archive's sha256 and size. On an
/// error `out` holds bytes that must not be used: callers write to a temporary file and give it
/// its name only on success (see `classcache_oci::verified`).
pub fn unpack_layer<R: Read, W: Write>(
    layer: R,
    layer_descriptor: &Descriptor,
    archive: &ArchiveFile,
    out: W,
    reference: &str,
) -> Result<W, ArtifactError> {
    check_archive_name(&archive.name)?;
    let bad = |problem: String| ArtifactError::BadLayer {
        reference: reference.to_string(),
        problem,
    };
    let mut hashed_layer = HashingReader::new(layer);
    let extracted = extract_single_file(&mut hashed_layer, archive, out, reference);
    // The gzip trailer and any padding count towards the layer digest too; reading to the end
    // even after a decoding error lets a corrupted blob be reported as what it is.
    let drained = io::copy(&mut hashed_layer, &mut io::sink());
    let (_, layer_counter) = hashed_layer.into_parts();
    if drained.is_ok() {
        check_size(
            reference,
            "layer",
            layer_descriptor.size,
            layer_counter.len(),
        )?;
        check_digest(
            reference,
            "layer",
            &layer_descriptor.digest,
            layer_counter.finish_digest(),
        )?;
    }
    let (out, archive_counter) = extracted?;
    drained.map_err(|e| bad(format!("could not be read to its end ({e})")))?;
    check_size(
        reference,
        "archive file",
        archive.size,
        archive_counter.len(),
    )?;
    let expected = crate::digest::Digest::from_hex(&archive.sha256).map_err(|_| {
        bad(format!(
            "config names the archive sha256 {:?}, not 64 lower-case hex digits",
            archive.sha256
        ))
    })?;
    check_digest(
        reference,
        "archive file",
        &expected,
        archive_counter.finish_digest(),
    )?;
    Ok(out)
}

/// Decompresses the layer and copies its one file, `archive.name`, to `out`.
fn extract_single_file<R: Read, W: Write>(
    layer: R,
    archive: &ArchiveFile,
    out: W,
    reference: &str,
) -> Result<(W, Sha256Counter), ArtifactError> {
    let bad = |problem: String| ArtifactError::BadLayer {
        reference: reference.to_string(),
        problem,
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let mut entries = tar
        .entries()
        .map_err(|e| bad(format!("is not a tar+gzip stream ({e})")))?;
    let mut entry = match entries.next() {
        Some(entry) => entry.map_err(|e| bad(format!("is not a tar+gzip stream ({e})")))?,
        None => return Err(bad("holds no file".to_string())),
    };
    let path = entry
        .path()
        .map_err(|e| bad(format!("has an unreadable entry name ({e})")))?
        .to_string_lossy()
        .into_owned();
    if path != archive.name || entry.header().entry_type() != tar::EntryType::Regular {
        return Err(bad(format!(
            "holds {path:?}, expected the file {:?}",
            archive.name
        )));
    }
    // Checked before a byte is written: a small gzip layer must not unpack to far more than
    // its config says (the tar reader yields exactly the header's size).
    let header_size = entry
        .header()
        .size()
        .map_err(|e| bad(format!("has an unreadable entry size ({e})")))?;
    if header_size != archive.size {
        return Err(bad(format!(
            "holds {header_size} bytes of {path:?}, but its config says {}",
            archive.size
        )));
    }
    let mut writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
    io::copy(&mut entry, &mut writer)
        .map_err(|e| bad(format!("could not be decompressed ({e})")))?;
    let (buffered, counter) = writer.into_parts();
    let out = buffered
        .into_inner()
        .map_err(|e| bad(format!("could not be written ({})", e.error())))?;
    if let Some(next) = entries.next() {
        let name = next
            .ok()
            .and_then(|e| e.path().ok().map(|p| p.to_string_lossy().into_owned()));
        return Err(bad(format!("holds more than one file (also {name:?})")));
    }
    Ok((out, counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what an unpack writes.
    #[derive(Debug)]
    struct Counting(u64);

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_layer_that_unpacks_to_more_than_its_config_says_writes_nothing() {
        // 64 MiB of zeros gzip to a few tens of KB: a tar bomb for a config claiming 1 KiB.
        let big = 64u64 << 20;
        let (gz, packed) = pack_layer(io::repeat(0).take(big), big, "app.jsa", Vec::new()).unwrap();
        assert!(gz.len() < 1 << 20, "{}", gz.len());
        let mut claimed = packed.archive.clone();
        claimed.size = 1024;
        let mut out = Counting(0);
        let Err(e) = extract_single_file(&gz[..], &claimed, &mut out, "r@d") else {
            panic!("a layer over its config's size is refused");
        };
        assert!(e.to_string().contains("its config says 1024"), "{e}");
        assert_eq!(out.0, 0, "refused before writing");
        let e = unpack_layer(&gz[..], &packed.descriptor, &claimed, Counting(0), "r@d")
            .expect_err("refused");
        assert!(matches!(e, ArtifactError::BadLayer { .. }), "{e}");
    }
}
