/// What a walk over a JPEG file's marker segments finds, without decoding pixels: the frame header, the EXIF / XMP
/// metadata PIL reads, and whether the file reaches its EOI marker.
///
/// The walk follows ITU T.81 B.1: after SOI, marker segments (`FF xx`, a big-endian length ≥ 2 that counts itself,
/// then the payload); fill bytes `FF FF…` and stray non-`FF` bytes between segments are skipped (as libjpeg's
/// `next_marker` does); after an SOS header, entropy-coded data runs up to the next `FF xx` with
/// `xx ∉ {00, D0…D7}` (`FF 00` is a stuffed `FF`, `D0…D7` are restart markers). SOI, EOI, RSTn and TEM carry no
/// length. The walk ends at EOI, or at the end of the bytes.
struct JPEGStructure: Equatable {
    /// From the first SOFn (C0–C3, C5–C7, C9–CB, CD–CF).
    var width = 0
    var height = 0
    var components = 0
    var precision = 0
    /// The SOF marker's second byte (C0 baseline, C2 progressive, …).
    var frameMarker: UInt8 = 0
    /// The EXIF TIFF block as PIL's `JpegImagePlugin` builds `info["exif"]`: the payload of the first APP1 segment
    /// starting with `Exif\0\0` (without those 6 bytes), followed by the payloads of later such segments minus
    /// their `Exif\0\0`. Nil when there is none.
    var exif: [UInt8]?
    /// The XMP packet of the *last* APP1 segment starting with `http://ns.adobe.com/xap/1.0/\0` (PIL keeps the last).
    var xmp: [UInt8]?
    /// True when an EOI marker was reached; false when the bytes end first (libjpeg then warns "Premature end of JPEG
    /// file" and PIL raises `OSError: image file is truncated`).
    var reachedEOI = false

    enum Failure: Error, Equatable {
        /// The bytes end inside a marker segment header or payload before the first SOS.
        case truncated(String)
        /// The structure is invalid (`detail` says how).
        case corrupt(String)
    }

    /// Walks `bytes`, which must start with `FF D8` (SOI). Throws when the bytes end before the first scan's
    /// header has been read, or the header segments are malformed; a file cut inside entropy-coded data is
    /// reported through `reachedEOI == false` instead.
    static func walk(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> JPEGStructure {
        var s = JPEGStructure()
        let n = bytes.count
        guard n >= 2, bytes[0] == 0xFF, bytes[1] == 0xD8 else { throw .corrupt("no SOI marker (FF D8) at the start") }
        var pos = 2
        var seenScan = false
        while pos < n {
            // Next marker: skip stray bytes, then FF fill bytes.
            if bytes[pos] != 0xFF {
                if seenScan {
                    // Entropy-coded data: run to the next FF that starts a marker other than RSTn.
                    pos = nextMarkerInEntropyData(bytes, from: pos)
                    continue
                }
                pos += 1
                continue
            }
            var m = pos + 1
            while m < n && bytes[m] == 0xFF { m += 1 }
            guard m < n else { break }
            let marker = bytes[m]
            pos = m + 1
            switch marker {
            case 0x00:
                // A stuffed FF in entropy-coded data, or junk between segments: not a marker.
                continue
            case 0xD0...0xD7, 0x01, 0xD8:
                continue
            case 0xD9:
                s.reachedEOI = true
                return s
            default:
                break
            }
            guard pos + 2 <= n else {
                if seenScan { return s }
                throw .truncated("the file ends inside the length of marker FF \(hex(marker)) at byte \(m - 1)")
            }
            let length = Int(bytes[pos]) << 8 | Int(bytes[pos + 1])
            guard length >= 2 else { throw .corrupt("marker FF \(hex(marker)) at byte \(m - 1) has length \(length) < 2") }
            let payloadStart = pos + 2, end = pos + length
            guard end <= n else {
                if seenScan { return s }
                throw .truncated("marker segment FF \(hex(marker)) at byte \(m - 1) declares \(length) bytes, "
                                 + "only \(n - pos) remain")
            }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<end])
            switch marker {
            case 0xC0...0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                guard s.frameMarker == 0 else {
                    throw .corrupt("a second frame header (FF \(hex(marker))) at byte \(m - 1)")
                }
                guard payload.count >= 6 else { throw .corrupt("frame header FF \(hex(marker)) shorter than 6 bytes") }
                s.frameMarker = marker
                s.precision = Int(payload[0])
                s.height = Int(payload[1]) << 8 | Int(payload[2])
                s.width = Int(payload[3]) << 8 | Int(payload[4])
                s.components = Int(payload[5])
            case 0xDA:
                guard s.frameMarker != 0 else { throw .corrupt("a scan (FF DA) before any frame header (SOFn)") }
                seenScan = true
            case 0xE1:
                if startsWith(payload, exifPrefix) {
                    let body = Array(payload[exifPrefix.count...])
                    if s.exif == nil { s.exif = body } else { s.exif?.append(contentsOf: body) }
                } else if startsWith(payload, xmpPrefix) {
                    s.xmp = Array(payload[xmpPrefix.count...])
                }
            default:
                break
            }
            pos = end
        }
        guard seenScan else { throw .truncated("the file ends before the first scan (no SOS marker)") }
        return s
    }

    /// The index of the `FF` that starts the next marker (not `FF 00`, not RSTn, fill bytes skipped), or `count`.
    private static func nextMarkerInEntropyData(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        let n = bytes.count
        var i = start
        while i < n {
            guard let base = bytes.baseAddress, let hit = memchr(base + i, 0xFF, n - i) else { return n }
            let ff = base.distance(to: UnsafeRawPointer(hit))
            var j = ff + 1
            while j < n && bytes[j] == 0xFF { j += 1 }
            if j >= n { return n }
            let next = bytes[j]
            if next == 0x00 || (0xD0...0xD7).contains(next) { i = j + 1; continue }
            return j - 1
        }
        return n
    }

    static let exifPrefix: [UInt8] = Array("Exif\0\0".utf8)
    static let xmpPrefix: [UInt8] = Array("http://ns.adobe.com/xap/1.0/\0".utf8)

    private static func startsWith(_ b: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        b.count >= prefix.count && zip(b, prefix).allSatisfy { $0 == $1 }
    }

    private static func hex(_ b: UInt8) -> String {
        let h = String(b, radix: 16, uppercase: true)
        return h.count == 1 ? "0" + h : h
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
