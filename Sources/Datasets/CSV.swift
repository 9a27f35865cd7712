extension ImageDataset {
    /// Where the label sits on each CSV line.
    public enum LabelColumn: Sendable {
        /// `label, p0, p1, …` (e.g. the Kaggle / pjreddie MNIST CSVs).
        case first
        /// `p0, p1, …, label` (e.g. OpenML mnist_784 / MNIST-5k, scikit-learn's digits.csv.gz).
        case last
    }

    /// Loads images from a CSV file, optionally gzip-compressed (detected by the `0x1f 0x8b` magic).
    ///
    /// Each data line holds exactly `side * side + 1` comma-separated numbers: the label (first or last,
    /// per `labelColumn`) and the pixels of a `side × side` image, row-major. A field is an integer written
    /// in decimal, optionally in floating-point notation whose value is integral (`16`, `16.0`, `1.6e+01`,
    /// as NumPy's `savetxt` writes); spaces and tabs around a field are ignored, and a trailing `\r` (CRLF
    /// files) is dropped. Lines that are empty or only whitespace are skipped; line numbers in errors count
    /// every physical line from 1.
    ///
    /// Checks, each a ``DatasetError`` naming the file and line (and field, 1-based): field count;
    /// every field an integer; every pixel in `0 ... maxValue`; every label in `0 ..< numClasses`;
    /// at least one data line (unless `limit` is 0).
    ///
    /// - Parameters:
    ///   - side: image height = width (28 for MNIST, 8 for scikit-learn digits).
    ///   - maxValue: largest allowed pixel value, which normalizes to 1.0 (255 for MNIST, 16 for digits); 1 ... 255.
    ///   - hasHeader: skip the first line (a column-name header) without parsing it.
    ///   - limit: stop after this many data lines (the rest of the file is not read or checked). `nil` reads all.
    public static func loadCSV(path: String, side: Int, labelColumn: LabelColumn, maxValue: Int = 255,
                               numClasses: Int = 10, hasHeader: Bool = false, limit: Int? = nil) throws -> ImageDataset {
        func fail(_ kind: DatasetError.Kind) -> DatasetError { DatasetError(path: path, kind) }
        guard side >= 1, side <= 4096 else { throw fail(.invalidArgument("side must be in 1 ... 4096, got \(side)")) }
        guard (1...255).contains(maxValue) else { throw fail(.invalidArgument("maxValue must be in 1 ... 255, got \(maxValue)")) }
        guard numClasses >= 1 else { throw fail(.invalidArgument("numClasses must be >= 1, got \(numClasses)")) }
        if let limit = limit, limit < 0 { throw fail(.invalidArgument("limit must be >= 0, got \(limit)")) }
        let maxItems = limit ?? Int.max
        let pixelsPerImage = side * side
        let fieldCount = pixelsPerImage + 1
        let labelField = labelColumn == .first ? 0 : pixelsPerImage

        var pixels = [UInt8]()
        var labels = [Int32]()
        if maxItems == 0 { return ImageDataset(unchecked: side, side, pixels, labels, numClasses, maxValue) }

        let reader = try ByteReader(path: path)
        var lineNumber = 0
        var pending = [UInt8]()   // bytes of a line not yet terminated
        var finished = false
        var row = [Int](repeating: 0, count: fieldCount)

        func parseLine(_ line: ArraySlice<UInt8>) throws {
            lineNumber += 1
            if hasHeader && lineNumber == 1 { return }
            var body = line
            if body.last == UInt8(ascii: "\r") { body = body.dropLast() }
            if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            let found = body.reduce(1) { $1 == UInt8(ascii: ",") ? $0 + 1 : $0 }
            guard found == fieldCount else { throw fail(.wrongFieldCount(line: lineNumber, expected: fieldCount, found: found)) }
            var field = 0
            var start = body.startIndex
            var i = body.startIndex
            while true {
                if i == body.endIndex || body[i] == UInt8(ascii: ",") {
                    guard let v = parseInteger(body[start..<i]) else {
                        throw fail(.notAnInteger(line: lineNumber, column: field + 1, text: text(body[start..<i])))
                    }
                    if field == labelField {
                        guard v >= 0 && v < numClasses else {
                            throw fail(.labelOutOfRange(index: labels.count, location: "line \(lineNumber)", label: v, numClasses: numClasses))
                        }
                    } else if v < 0 || v > maxValue {
                        throw fail(.pixelOutOfRange(line: lineNumber, column: field + 1, value: text(body[start..<i]), maxValue: maxValue))
                    }
                    row[field] = v
                    field += 1
                    if i == body.endIndex { break }
                    start = i + 1
                }
                i += 1
            }
            for f in 0..<fieldCount where f != labelField { pixels.append(UInt8(row[f])) }
            labels.append(Int32(row[labelField]))
            if labels.count >= maxItems { finished = true }
        }

        while !finished {
            let chunk = try reader.read(count: 1 << 20)
            var lineStart = 0
            for (i, b) in chunk.enumerated() where b == UInt8(ascii: "\n") {
                if pending.isEmpty {
                    try parseLine(chunk[lineStart..<i])
                } else {
                    pending.append(contentsOf: chunk[lineStart..<i])
                    try parseLine(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                lineStart = i + 1
                if finished { break }
            }
            if finished { break }
            pending.append(contentsOf: chunk[lineStart...])
            if chunk.count < 1 << 20 {  // end of file: a last line without '\n'
                if !pending.isEmpty { try parseLine(pending[...]) }
                break
            }
        }
        guard !labels.isEmpty else { throw fail(.empty) }
        return ImageDataset(unchecked: side, side, pixels, labels, numClasses, maxValue)
    }

    private static func text(_ bytes: ArraySlice<UInt8>) -> String {
        let s = String(decoding: bytes.prefix(40), as: UTF8.self).trimmingSpaces()
        return bytes.count > 40 ? s + "…" : s
    }

    /// Parses an integer field: optional spaces/tabs around `[+-]?digits`, or a decimal / exponent form
    /// (`[+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?`) whose value is an integer. Values beyond
    /// ±1e9 are returned clamped to ±1_000_000_001 (so they fail every range check). `nil` if not an integer.
    static func parseInteger(_ field: ArraySlice<UInt8>) -> Int? {
        var lo = field.startIndex, hi = field.endIndex
        while lo < hi, field[lo] == 0x20 || field[lo] == 0x09 { lo += 1 }
        while hi > lo, field[hi - 1] == 0x20 || field[hi - 1] == 0x09 { hi -= 1 }
        guard lo < hi else { return nil }
        let s = field[lo..<hi]
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

        // Fast path: plain (signed) integer.
        var i = s.startIndex
        var negative = false
        if s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") { negative = s[i] == UInt8(ascii: "-"); i += 1 }
        if i < s.endIndex, s[i...].allSatisfy(isDigit) {
            var v = 0
            for b in s[i...] {
                v = v * 10 + Int(b - 0x30)
                if v > 1_000_000_000 { return negative ? -1_000_000_001 : 1_000_000_001 }
            }
            return negative ? -v : v
        }

        // Floating-point notation: validate the grammar, then require an integral value.
        var j = i
        var mantissaDigits = 0
        while j < s.endIndex, isDigit(s[j]) { j += 1; mantissaDigits += 1 }
        if j < s.endIndex, s[j] == UInt8(ascii: ".") {
            j += 1
            while j < s.endIndex, isDigit(s[j]) { j += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return nil }
        if j < s.endIndex, s[j] == UInt8(ascii: "e") || s[j] == UInt8(ascii: "E") {
            j += 1
            if j < s.endIndex, s[j] == UInt8(ascii: "+") || s[j] == UInt8(ascii: "-") { j += 1 }
            let expStart = j
            while j < s.endIndex, isDigit(s[j]) { j += 1 }
            guard j > expStart else { return nil }
        }
        guard j == s.endIndex, let d = Double(String(decoding: s, as: UTF8.self)), d.isFinite, d == d.rounded() else { return nil }
        if abs(d) > 1e9 { return d < 0 ? -1_000_000_001 : 1_000_000_001 }
        return Int(d)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
