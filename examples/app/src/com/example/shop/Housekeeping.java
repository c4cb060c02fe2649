package com.example.shop;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;
import java.util.HexFormat;
import java.util.zip.GZIPOutputStream;

/** Writes the audit journal: NIO channels, gzip and a sha256 of each segment. */
public final class Housekeeping {
    private final Path dir;

    public Housekeeping(Path dir) {
        this.dir = dir;
    }

    public String writeSegment(String journal) throws IOException {
        Files.createDirectories(dir);
        Path raw = dir.resolve("journal.log");
        try (FileChannel ch = FileChannel.open(raw, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.write(ByteBuffer.wrap(journal.getBytes(StandardCharsets.UTF_8)));
            ch.force(true);
        }
        Path gz = dir.resolve("journal.log.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
            Files.copy(raw, out);
        }
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            byte[] digest = sha.digest(Files.readAllBytes(gz));
            String hex = HexFormat.of().formatHex(digest);
            Files.writeString(dir.resolve("journal.sha256"), hex + "  journal.log.gz\n"
                + Base64.getEncoder().encodeToString(digest) + "\n");
            return hex;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no SHA-256", e);
        }
    }
}
