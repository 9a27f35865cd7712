import CZlib
import Foundation

/// CLIP's byte-level BPE tokenizer (OpenAI `SimpleTokenizer`, as OpenCLIP ships it), over the vocabulary file
/// `bpe_simple_vocab_16e6.txt.gz` (`launch/fetch-clip-vocab` extracts it from PyPI `open_clip_torch`).
///
/// `tokenize(text)` = OpenCLIP's `tokenize`: clean (``TextFixes/fixText(_:)`` for ftfy, HTML entities unescaped
/// twice, surrounding whitespace stripped, whitespace runs collapsed to one space, lower-cased), split with CLIP's pattern
/// `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`, map each piece's UTF-8
/// bytes to CLIP's printable byte alphabet, merge by BPE rank, then [start] + ids + [end], truncated to the
/// context (the end token kept last) and zero-padded.
///
/// Not reproduced: ftfy's mojibake repair (`schÃ¶n` → `schön`); such text tokenizes as written.
/// Not thread-safe (it caches each piece's BPE): one tokenizer per thread.
public final class CLIPTokenizer {
    public static let startOfText = "<start_of_text>"
    public static let endOfText = "<end_of_text>"
    public let contextLength: Int
    public let startID: Int32
    public let endID: Int32
    public var vocabularySize: Int { encoder.count }

    let encoder: [String: Int32]
    let decoder: [String]
    let ranks: [Pair: Int]
    let byteSymbols: [String]
    let pattern: NSRegularExpression
    var cache: [String: [Int32]] = [:]

    struct Pair: Hashable { let a: String, b: String }

    /// The merges CLIP uses: lines 2 ..< 2 + 48894 of the file (49152 − 256 − 2).
    static let mergeCount = 49152 - 256 - 2

    /// Reads the vocabulary (gzip or plain text). Errors name the file and what was expected.
    public init(vocabularyPath path: String, contextLength: Int = 77) throws {
        guard contextLength >= 2 else { throw TokenizerError(path: path, message: "context length must be ≥ 2") }
        let text = try Self.readText(path)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= Self.mergeCount + 1 else {
            throw TokenizerError(path: path, message: "has \(lines.count) lines; expected at least \(Self.mergeCount + 1) "
                + "(a header and \(Self.mergeCount) BPE merges: is this bpe_simple_vocab_16e6.txt.gz?)")
        }
        lines = Array(lines[1...Self.mergeCount])
        let (table, order) = Self.bytesToUnicode()
        byteSymbols = table
        let symbols = order.map { table[$0] }
        var vocab = symbols + symbols.map { $0 + "</w>" }
        var ranks: [Pair: Int] = [:]
        ranks.reserveCapacity(lines.count)
        for (i, line) in lines.enumerated() {
            let parts = line.split(separator: " ")
            guard parts.count == 2 else {
                throw TokenizerError(path: path, message: "line \(i + 2) is `\(line.prefix(40))`; expected two symbols")
            }
            ranks[Pair(a: String(parts[0]), b: String(parts[1]))] = i
            vocab.append(String(parts[0]) + String(parts[1]))
        }
        vocab += [Self.startOfText, Self.endOfText]
        var enc: [String: Int32] = [:]
        for (i, v) in vocab.enumerated() { enc[v] = Int32(i) }
        encoder = enc
        decoder = vocab
        self.ranks = ranks
        self.contextLength = contextLength
        startID = Int32(vocab.count - 2)   // appended last: 49406 and 49407 with CLIP's vocabulary
        endID = Int32(vocab.count - 1)
        let special = "\(Self.startOfText)|\(Self.endOfText)"
        pattern = try NSRegularExpression(pattern: special + #"|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#,
                                          options: [.caseInsensitive])
    }

    /// OpenCLIP `tokenize`: [contextLength] ids, zero-padded, the end token last when truncated.
    public func tokenize(_ text: String) -> [Int32] {
        var ids = [startID] + encode(text) + [endID]
        if ids.count > contextLength {
            ids = Array(ids.prefix(contextLength))
            ids[contextLength - 1] = endID
        }
        return ids + [Int32](repeating: 0, count: contextLength - ids.count)
    }

    /// The BPE ids of `text` without start/end tokens, padding or truncation (OpenCLIP `encode`).
    public func encode(_ text: String) -> [Int32] {
        let cleaned = Self.clean(text)
        let ns = cleaned as NSString
        var out: [Int32] = []
        for m in pattern.matches(in: cleaned, range: NSRange(location: 0, length: ns.length)) {
            let piece = ns.substring(with: m.range)
            if let special = encoder[piece], piece == Self.startOfText || piece == Self.endOfText {
                out.append(special)
                continue
            }
            let mapped = piece.utf8.map { byteSymbols[Int($0)] }.joined()
            if let hit = cache[mapped] { out += hit; continue }
            let ids = bpe(piece.utf8.map { byteSymbols[Int($0)] })
            cache[mapped] = ids
            out += ids
        }
        return out
    }

    /// The vocabulary string of an id (for inspection).
    public func piece(_ id: Int32) -> String? { id >= 0 && Int(id) < decoder.count ? decoder[Int(id)] : nil }

    /// BPE over one piece: start from its byte symbols (the last one marked `</w>`) and repeatedly merge the
    /// adjacent pair of lowest rank, every occurrence left to right, until no pair has a rank.
    func bpe(_ symbols: [String]) -> [Int32] {
        guard !symbols.isEmpty else { return [] }
        var word = symbols
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, pair: Pair)?
            for i in 0..<(word.count - 1) {
                let p = Pair(a: word[i], b: word[i + 1])
                if let r = ranks[p], r < (best?.rank ?? .max) { best = (r, p) }
            }
            guard let (_, pair) = best else { break }
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i + 1 < word.count, word[i] == pair.a, word[i + 1] == pair.b {
                    merged.append(pair.a + pair.b); i += 2
                } else {
                    merged.append(word[i]); i += 1
                }
            }
            word = merged
        }
        // Every symbol a merge can produce is in the vocabulary by construction.
        return word.map { encoder[$0] ?? 0 }
    }

    /// OpenCLIP's `_clean_lower`: ftfy (``TextFixes``), HTML-unescape twice, strip, collapse whitespace runs,
    /// lower-case.
    public static func clean(_ text: String) -> String {
        let unescaped = HTMLEntities.unescape(HTMLEntities.unescape(TextFixes.fixText(text)))
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for s in unescaped.unicodeScalars {
            if isPythonSpace(s) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(s)
            }
        }
        return pythonLower(String(out))
    }

    /// Python's `str.lower()`: the full lower-case mapping of each scalar, and capital sigma → final ς at the end
    /// of a word (Unicode's Final_Sigma: a cased letter before it, none after, case-ignorable ones skipped).
    static func pythonLower(_ text: String) -> String {
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, c) in s.enumerated() {
            if c == "\u{03A3}" {
                var before = false, after = false
                var j = i - 1
                while j >= 0, s[j].properties.isCaseIgnorable { j -= 1 }
                if j >= 0 { before = s[j].properties.isCased }
                j = i + 1
                while j < s.count, s[j].properties.isCaseIgnorable { j += 1 }
                if j < s.count { after = s[j].properties.isCased }
                out.append(before && !after ? "\u{03C2}" : "\u{03C3}")
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }

    /// Python's `str.isspace` (what `str.split()` and `strip()` split on): Unicode White_Space plus the
    /// information separators U+001C…U+001F.
    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)
    }

    /// GPT-2 / CLIP byte → printable symbol: printable Latin-1 bytes map to themselves, the others to U+0100….
    /// `order` lists the bytes in the order their symbols enter the vocabulary (ids 0…255): the printable ones
    /// first, then the rest — Python's dict order in `bytes_to_unicode()`.
    static func bytesToUnicode() -> (table: [String], order: [Int]) {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table = [String](repeating: "", count: 256)
        for b in printable { table[b] = String(Unicode.Scalar(UInt8(b))) }
        var order = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            table[b] = String(Unicode.Scalar(UInt32(256 + n))!)
            order.append(b)
            n += 1
        }
        return (table, order)
    }

    static func readText(_ path: String) throws -> String {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TokenizerError(path: path, message: "cannot read the file (run launch/fetch-clip-vocab to get the "
                + "CLIP vocabulary)")
        }
        guard let f = gzopen(path, "rb") else { throw TokenizerError(path: path, message: "cannot open") }
        defer { gzclose(f) }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
            if n < 0 { throw TokenizerError(path: path, message: "gzip stream is corrupt") }
            if n == 0 { break }
            data += chunk[0..<Int(n)]
            guard data.count < 64 << 20 else {
                throw TokenizerError(path: path, message: "larger than 64 MiB decompressed; not a BPE vocabulary")
            }
        }
        guard let s = String(validating: data, as: UTF8.self) else {
            throw TokenizerError(path: path, message: "is not UTF-8 text")
        }
        return s
    }
}

public struct TokenizerError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}
