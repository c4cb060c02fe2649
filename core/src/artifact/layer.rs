//! The archive artifact's layer: a tar+gzip stream holding the one archive file.
//! It packs and unpacks streams and checks every byte against its digest; it must not decide
//! where an archive lives.

use super::{
    check_digest, check_size, ArchiveFile, ArtifactError, ANNOTATION_TITLE, LAYER_GZIP_LEVEL,
};
use crate::digest::{HashingReader, HashingWriter, Sha256Counter};
use crate::media_types;
use crate::oci::Descriptor;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What packing an archive into a layer produced: the layer's descriptor and the archive's
/// uncompressed size and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedLayer {
    pub descriptor: Descriptor,
    pub archive: ArchiveFile,
}

fn check_archive_name(name: &str) -> Result<(), ArtifactError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(ArtifactError::BadArchiveName(name.to_string()));
    }
    Ok(())
}

/// Writes the layer (a tar holding `archive` as `name`, gzip-compressed) to `out`, streaming:
/// memory stays at a few buffers whatever the archive's size. The layer's digest and size and
/// the archive's sha256 and size are computed while the bytes pass.
pub fn pack_layer<W: Write>(
    archive: &Path,
    name: &str,
    out: W,
) -> Result<(W, PackedLayer), ArtifactError> {
    check_archive_name(name)?;
    let unreadable = |source| ArtifactError::ArchiveUnreadable {
        path: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let write_err = |source| ArtifactError::Write {
        path: PathBuf::from("<layer>"),
        source,
    };

    let counted = HashingWriter::new(out);
    let gz = flate2::write::GzEncoder::new(counted, flate2::Compression::new(LAYER_GZIP_LEVEL));
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(write_err)?;
    header.set_size(size);
    header.set_mode(0o644);
    // mtime 0 keeps the layer digest a function of the archive's bytes alone.
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut reader = HashingReader::new(BufReader::with_capacity(256 * 1024, file).take(size));
    tar.append(&header, &mut reader).map_err(write_err)?;
    let (_, archive_counter) = reader.into_parts();
    if archive_counter.len() != size {
        return Err(ArtifactError::ArchiveChanged {
            path: archive.to_path_buf(),
            expected: size,
            actual: archive_counter.len(),
        });
    }
    let gz = tar.into_inner().map_err(write_err)?;
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
        },
    ))
}

/// Reads a layer from `layer` (streamed, one pass) and writes its archive to `dest` atomically:
/// a temporary file beside `dest`, checked against the layer descriptor's digest and size and
/// the archive's sha256 and size, fsynced, then renamed; on any mismatch `dest` is untouched.
pub fn unpack_layer<R: Read>(
    layer: R,
    layer_descriptor: &Descriptor,
    archive: &ArchiveFile,
    dest: &Path,
    reference: &str,
) -> Result<(), ArtifactError> {
    check_archive_name(&archive.name)?;
    let bad = |problem: String| ArtifactError::BadLayer {
        reference: reference.to_string(),
        problem,
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let write_err = |source| ArtifactError::Write {
        path: dest.to_path_buf(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".classcache-partial-")
        .tempfile_in(dir)
        .map_err(write_err)?;

    let mut hashed_layer = HashingReader::new(layer);
    let extracted = extract_single_file(&mut hashed_layer, archive, temp.as_file_mut(), reference);
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
    let archive_counter = extracted?;
    drained.map_err(|e| bad(format!("could not be read to its end ({e})")))?;
    check_size(
        reference,
        "archive file",
        archive.size,
        archive_counter.len(),
    )?;
    check_digest(
        reference,
        "archive file",
        &format!("sha256:{}", archive.sha256),
        archive_counter.finish_digest(),
    )?;

    temp.as_file().sync_all().map_err(write_err)?;
    temp.persist(dest).map_err(|e| write_err(e.error))?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; not every file system supports fsync on a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Decompresses the layer and copies its one file, `archive.name`, to `out`.
fn extract_single_file<R: Read>(
    layer: R,
    archive: &ArchiveFile,
    out: &mut File,
    reference: &str,
) -> Result<Sha256Counter, ArtifactError> {
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
    let mut writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
    io::copy(&mut entry, &mut writer)
        .map_err(|e| bad(format!("could not be decompressed ({e})")))?;
    let (buffered, counter) = writer.into_parts();
    buffered
        .into_inner()
        .map_err(|e| bad(format!("could not be written ({})", e.error())))?;
    if let Some(next) = entries.next() {
        let name = next
            .ok()
            .and_then(|e| e.path().ok().map(|p| p.to_string_lossy().into_owned()));
        return Err(bad(format!("holds more than one file (also {name:?})")));
    }
    Ok(counter)
}
