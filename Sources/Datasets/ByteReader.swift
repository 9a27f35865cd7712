import CZlib
import Foundation

/// Sequential reader over a file that may be gzip-compressed.
///
/// Uses zlib's `gzopen`/`gzread`, which look at the first two bytes: `0x1f 0x8b` means gzip (decompressed
/// on the fly, concatenated members included); anything else is read as is. A gzip stream that ends early
/// or fails its CRC is reported as ``DatasetError/Kind/gzip(reason:)``.
final class ByteReader {
    let path: String
    private var file: gzFile?
    /// Bytes delivered so far (decompressed).
    private(set) var offset = 0
    /// Size of the file on disk when it is a regular file (for an uncompressed file, an upper bound on what
    /// can be read; see ``isCompressed``).
    let fileSize: Int?

    init(path: String) throws {
        self.path = path
        // Probe with open(2) for a precise system error and to reject directories.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DatasetError(path: path, .unreadable(reason: String(cString: strerror(errno)))) }
        var st = stat()
        let statResult = fstat(fd, &st)
        close(fd)
        if statResult == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            throw DatasetError(path: path, .unreadable(reason: "is a directory; expected a file"))
        }
        fileSize = statResult == 0 && (st.st_mode & S_IFMT) == S_IFREG ? Int(st.st_size) : nil
        guard let f = gzopen(path, "rb") else {
            throw DatasetError(path: path, .unreadable(reason: String(cString: strerror(errno))))
        }
        gzbuffer(f, 1 << 18)
        file = f
    }

    deinit {
        if let f = file { gzclose(f) }
    }

    /// True when the file is gzip-compressed (valid after the first read).
    var isCompressed: Bool {
        guard let f = file else { return false }
        return gzdirect(f) == 0
    }

    /// Reads up to `count` bytes, fewer only at the end of the data. Throws on I/O or gzip errors.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let f = file, let base = buffer.baseAddress else { return 0 }
        var total = 0
        while total < buffer.count {
            let chunk = UInt32(min(buffer.count - total, 1 << 30))
            let n = gzread(f, base + total, chunk)
            if n < 0 { throw zlibError() }
            if n == 0 { break }
            total += Int(n)
            offset += Int(n)
        }
        if total < buffer.count {
            // A short read is either a clean end of file or a truncated gzip stream (Z_BUF_ERROR).
            var errnum: Int32 = 0
            _ = gzerror(f, &errnum)
            if errnum != Z_OK { throw zlibError() }
        }
        return total
    }

    /// Reads exactly `count` bytes, or returns the shorter array the file had left.
    func read(count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(into: $0) }
        if n < count { out.removeLast(count - n) }
        return out
    }

    /// True if no byte remains.
    func atEnd() throws -> Bool {
        var probe: UInt8 = 0
        let n = try withUnsafeMutableBytes(of: &probe) { try read(into: $0) }
        if n > 0 { offset -= n }  // not consumed for reporting purposes; callers stop reading after this
        return n == 0
    }

    private func zlibError() -> DatasetError {
        guard let f = file else { return DatasetError(path: path, .unreadable(reason: "file closed")) }
        var errnum: Int32 = 0
        var message = gzerror(f, &errnum).map { String(cString: $0) } ?? "unknown zlib error"
        if message.hasPrefix(path + ": ") { message.removeFirst(path.count + 2) }  // zlib prefixes the path
        if errnum == Z_ERRNO { return DatasetError(path: path, .unreadable(reason: String(cString: strerror(errno)))) }
        if errnum == Z_BUF_ERROR {
            return DatasetError(path: path, .gzip(reason: "\(message): the compressed stream is truncated"
                                                   + " after \(offset) decompressed bytes"))
        }
        return DatasetError(path: path, .gzip(reason: message))
    }
}
