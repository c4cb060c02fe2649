//! The archive artifact's files: packing an archive file into a layer file, and unpacking a
//! layer stream to a verified archive file. It opens and names files around core's pure
//! pack/unpack; it must not change the format.

use crate::verified::{Expected, VerifiedFile};
use classcache_core::artifact::{
    check_subject, describe_archive, pack_layer, unpack_layer, ArchiveBlobs, ArchiveConfig,
    ArchiveFile, ArtifactError,
};
use classcache_core::digest::Digest;
use classcache_core::oci::Descriptor;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

/// Buffer of file reads and writes around the layer.
const FILE_BUFFER: usize = 256 * 1024;

/// An archive artifact ready to be written: its described blobs and the packed layer in a
/// temporary file (removed when this is dropped). Derefs to [`ArchiveBlobs`].
#[derive(Debug)]
pub struct PreparedArchive {
    pub blobs: ArchiveBlobs,
    pub layer_file: tempfile::NamedTempFile,
}

impl std::ops::Deref for PreparedArchive {
    type Target = ArchiveBlobs;
    fn deref(&self) -> &ArchiveBlobs {
        &self.blobs
    }
}

/// Packs `archive_path` into a layer in `temp_dir` and builds config and manifest around it.
/// `config.archive.size` and `.sha256` are filled from the bytes packed (the name is kept, or
/// taken from the file name when empty); `subject` must be the image `config.image.digest` names.
pub fn prepare_archive(
    mut config: ArchiveConfig,
    archive_path: &Path,
    subject: Descriptor,
    temp_dir: &Path,
) -> Result<PreparedArchive, ArtifactError> {
    check_subject(&config, &subject)?;
    if config.archive.name.is_empty() {
        config.archive.name = archive_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    let write_err = |source| ArtifactError::Write {
        path: temp_dir.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(".classcache-layer-")
        .tempfile_in(temp_dir)
        .map_err(write_err)?;
    let unreadable = |source| ArtifactError::ArchiveUnreadable {
        path: archive_path.to_path_buf(),
        source,
    };
    let file = File::open(archive_path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let (writer, packed) = pack_layer(
        BufReader::with_capacity(FILE_BUFFER, file),
        size,
        &config.archive.name,
        BufWriter::with_capacity(FILE_BUFFER, temp),
    )?;
    let layer_file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    layer_file.as_file().sync_all().map_err(write_err)?;
    Ok(PreparedArchive {
        blobs: describe_archive(config, packed, subject)?,
        layer_file,
    })
}

/// Reads a layer from `layer` (streamed, one pass) and writes its archive to `dest` through a
/// [`VerifiedFile`]: the layer's digest and size and the archive's sha256 and size are all
/// checked before `dest` gets its name; on any mismatch `dest` is untouched.
pub fn unpack_layer_to_file<R: Read>(
    layer: R,
    layer_descriptor: &Descriptor,
    archive: &ArchiveFile,
    dest: &Path,
    reference: &str,
) -> Result<(), ArtifactError> {
    let write_err = |e: crate::verified::WriteError| ArtifactError::Write {
        path: dest.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let out = VerifiedFile::create(dest).map_err(write_err)?;
    let out = unpack_layer(layer, layer_descriptor, archive, out, reference)?;
    let expected = Digest::from_hex(&archive.sha256).map_err(|_| ArtifactError::BadLayer {
        reference: reference.to_string(),
        problem: format!(
            "config names the archive sha256 {:?}, not 64 lower-case hex digits",
            archive.sha256
        ),
    })?;
    out.commit(Some(&Expected::new(expected, archive.size)))
        .map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use classcache_core::media_types;

    #[test]
    fn a_packed_file_unpacks_to_the_same_bytes_and_bad_layers_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app.jsa");
        std::fs::write(&src, classcache_core::testing::noise(100_000, 7)).unwrap();
        let mut config = classcache_core::testing::sample_config(
            "r/app:1",
            Digest::of(b"image").as_str(),
            classcache_core::key::ArchiveKind::DynamicCds,
            &[],
        );
        config.archive.name = String::new();
        let subject = Descriptor::new(media_types::OCI_MANIFEST, Digest::of(b"image"), 9);
        let prepared = prepare_archive(config, &src, subject, dir.path()).unwrap();
        assert_eq!(prepared.config.archive.name, "app.jsa");
        let layer = std::fs::read(prepared.layer_file.path()).unwrap();
        let dest = dir.path().join("out.jsa");
        unpack_layer_to_file(
            &layer[..],
            &prepared.layer_descriptor,
            &prepared.config.archive,
            &dest,
            "t",
        )
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());

        let mut bad = layer.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        let dest2 = dir.path().join("out2.jsa");
        assert!(unpack_layer_to_file(
            &bad[..],
            &prepared.layer_descriptor,
            &prepared.config.archive,
            &dest2,
            "t",
        )
        .is_err());
        assert!(!dest2.exists());
        let partial = crate::testing::partial_files(dir.path()).len();
        assert_eq!(partial, 0);
        let e = prepare_archive(
            prepared.config.clone(),
            &dir.path().join("missing.jsa"),
            Descriptor::new(media_types::OCI_MANIFEST, Digest::of(b"image"), 9),
            dir.path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing.jsa"), "{e}");
    }
}
