import Foundation
import SafeTensors

extension ImageFileList {
    /// One row of a manifest: the physical line it starts on (1-based), the path and the label as written.
    struct ManifestRow: Equatable {
        var line: Int
        var path: String
        var label: String
    }

    /// The two manifest formats.
    public enum ManifestFormat: Sendable {
        /// `path,label` with a header line (RFC 4180); see ``csvManifest(at:classes:)``.
        case csv
        /// One JSON object `{"path": ..., "label": ...}` per line; see ``jsonlManifest(at:classes:)``.
        case jsonl
    }

    /// Reads a manifest, the format chosen by the file's extension (ASCII case ignored): `.csv` is
    /// ``ManifestFormat/csv``; `.jsonl` and `.ndjson` are ``ManifestFormat/jsonl``.
    ///
    /// - Throws: ``ImageFileListError`` `.invalidArgument` for another extension, else as the reader chosen.
    public static func manifest(at path: String, classes: [String]? = nil) throws -> ImageFileList {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") { return try csvManifest(at: path, classes: classes) }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") { return try jsonlManifest(at: path, classes: classes) }
        throw ImageFileListError(path: path, .invalidArgument(
            "cannot tell the manifest format from the name; expected a .csv, .jsonl or .ndjson file"))
    }

    /// Reads a CSV manifest: a header line naming the columns, then one row per image (RFC 4180).
    ///
    /// Exact format: an optional UTF-8 byte-order mark; records end at LF, CRLF or a lone CR; fields are
    /// separated by `,`; a field starting with `"` is quoted — it ends at the next `"` not doubled, `""` stands for
    /// `"`, and it may hold commas and line breaks; a `"` inside an unquoted field, or anything but `,` or the end
    /// of the record after a closing quote, is an error. Fields are not trimmed (spaces belong to the field). Empty
    /// lines are skipped (as Python's `csv.DictReader` does). The header must name a `path` and a `label` column
    /// (once each; other columns are allowed and ignored); every record has the header's number of fields.
    /// `path` is a file path, relative to the manifest's directory unless it starts with `/`; `label` is a class
    /// name. Lines are counted from 1 (line breaks inside quoted fields count); a row's line is where it starts.
    ///
    /// Classes: `classes` in that order when given (every label must be one of them), else the distinct labels
    /// sorted by code point (Python's `sorted(set(labels))`).
    ///
    /// - Throws: ``ImageFileListError`` with the manifest's path: `.unreadable`; `.malformedRow` (the line: bad
    ///   quoting, wrong field count, missing header columns, empty path or label, a NUL byte in the path, bytes
    ///   that are not UTF-8); `.noRows`; `.unknownLabel`; `.duplicatePath` (two rows naming the same file,
    ///   compared after lexical normalization: `a//b`, `./a/b` and `c/../a/b` are `a/b`); `.missingFile` (a row
    ///   whose file does not exist or is not a regular file; checked with `stat`, links followed);
    ///   `.invalidArgument` (a given class list that is empty or repeats a name).
    public static func csvManifest(at path: String, classes: [String]? = nil) throws -> ImageFileList {
        try readManifest(at: path, format: .csv, classes: classes)
    }

    /// Reads a JSONL manifest: one JSON object per line, with a string member `"path"` and a string member
    /// `"label"` (a class name); other members are ignored.
    ///
    /// Exact format: an optional UTF-8 byte-order mark; lines end at LF (a CR before it is JSON whitespace); a line
    /// of JSON whitespace only is skipped; every other line is one strict RFC 8259 value (no comments, no NaN, no
    /// trailing commas, an object's keys distinct). `path` and classes as in ``csvManifest(at:classes:)``.
    ///
    /// - Throws: ``ImageFileListError`` as ``csvManifest(at:classes:)`` (`.malformedRow` also for a line that is not
    ///   a JSON object, lacks `"path"` or `"label"`, or has one that is not a string).
    public static func jsonlManifest(at path: String, classes: [String]? = nil) throws -> ImageFileList {
        try readManifest(at: path, format: .jsonl, classes: classes)
    }

    /// Reads the manifest file and builds the list (files checked when `checkFiles`).
    static func readManifest(at path: String, format: ManifestFormat, classes: [String]?,
                             checkFiles: Bool = true) throws -> ImageFileList {
        if let classes { try checkClassNames(classes, source: path) }
        switch FileSystem.kind(path) {
        case .regularFile, .other: break
        case .directory: throw ImageFileListError(path: path, .unreadable(reason: "is a directory; expected a file"))
        case .missing(let reason): throw ImageFileListError(path: path, .unreadable(reason: reason))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageFileListError(path: path, .unreadable(reason: "the file could not be read"))
        }
        let bytes = Array(data)
        let rows = try format == .csv ? parseCSVManifest(bytes, source: path) : parseJSONLManifest(bytes, source: path)
        let directory = (path as NSString).deletingLastPathComponent
        return try build(rows: rows, root: directory, source: path, classes: classes, checkFiles: checkFiles)
    }

    /// The list of `rows` (see ``csvManifest(at:classes:)`` for the checks and their order).
    static func build(rows: [ManifestRow], root: String, source: String, classes: [String]?,
                      checkFiles: Bool) throws -> ImageFileList {
        guard !rows.isEmpty else { throw ImageFileListError(path: source, .noRows) }
        let classNames = classes ?? Array(Dictionary(rows.map { (Array($0.label.utf8), $0.label) },
                                                     uniquingKeysWith: { a, _ in a }).values)
            .sorted(by: codePointLess)
        var classIndex = [[UInt8]: Int32]()
        for (k, name) in classNames.enumerated() { classIndex[Array(name.utf8)] = Int32(k) }
        var firstLine = [[UInt8]: Int]()
        var labels: [Int32] = []
        labels.reserveCapacity(rows.count)
        for row in rows {
            guard let label = classIndex[Array(row.label.utf8)] else {
                throw ImageFileListError(path: source, .unknownLabel(line: row.line, label: row.label, classes: classNames))
            }
            let file = join(root, row.path)
            let key = Array(normalized(file).utf8)
            if let first = firstLine[key] {
                throw ImageFileListError(path: source, .duplicatePath(line: row.line, file: file, firstLine: first))
            }
            firstLine[key] = row.line
            if checkFiles {
                switch FileSystem.kind(file) {
                case .regularFile: break
                case .missing(let reason): throw ImageFileListError(path: source, .missingFile(
                    line: row.line, file: file, reason: "cannot be opened (\(reason))"))
                case .directory, .other: throw ImageFileListError(path: source, .missingFile(
                    line: row.line, file: file, reason: "is not a regular file"))
                }
            }
            labels.append(label)
        }
        return try ImageFileList(root: root, paths: rows.map(\.path), labels: labels, classNames: classNames,
                                 source: source)
    }

    /// `path` normalized lexically as Python's `os.path.normpath` does: empty and `.` components dropped, `x/..`
    /// removed, a leading `/` kept (`..` directly under it dropped), "." for nothing left.
    static func normalized(_ path: String) -> String {
        let absolute = path.utf8.first == UInt8(ascii: "/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            if part == ".." {
                if let last = parts.last, last != ".." { parts.removeLast(); continue }
                if absolute { continue }
            }
            parts.append(part)
        }
        let body = parts.joined(separator: "/")
        return absolute ? "/" + body : (body.isEmpty ? "." : body)
    }

    // MARK: CSV

    /// The rows of a CSV manifest (format and errors: ``csvManifest(at:classes:)``; files not checked).
    static func parseCSVManifest(_ input: [UInt8], source: String) throws -> [ManifestRow] {
        var records = CSVRecords(input)
        func fail(_ line: Int, _ reason: String) -> ImageFileListError {
            ImageFileListError(path: source, .malformedRow(line: line, reason: reason))
        }
        guard let (headerLine, header) = try records.next(source: source) else {
            throw ImageFileListError(path: source, .noRows)
        }
        func column(_ name: String) throws -> Int {
            let found = header.indices.filter { header[$0] == Array(name.utf8) }
            guard found.count == 1 else {
                let names = header.map { ImageFileListError.quote(String(decoding: $0, as: UTF8.self)) }
                throw fail(headerLine, "the header must name a \"\(name)\" column exactly once; found the columns "
                           + names.joined(separator: ", "))
            }
            return found[0]
        }
        let pathColumn = try column("path"), labelColumn = try column("label")
        var rows: [ManifestRow] = []
        while let (line, fields) = try records.next(source: source) {
            guard fields.count == header.count else {
                throw fail(line, "expected \(header.count) comma-separated fields (as the header), found \(fields.count)")
            }
            rows.append(try row(line: line, path: fields[pathColumn], label: fields[labelColumn], source: source))
        }
        return rows
    }

    /// A row from its two fields, checked: both UTF-8 and non-empty, no NUL byte in the path.
    private static func row(line: Int, path: [UInt8], label: [UInt8], source: String) throws -> ManifestRow {
        func fail(_ reason: String) -> ImageFileListError {
            ImageFileListError(path: source, .malformedRow(line: line, reason: reason))
        }
        guard let p = String(validating: path, as: UTF8.self), let l = String(validating: label, as: UTF8.self) else {
            throw fail("the path or the label is not valid UTF-8")
        }
        guard !p.isEmpty else { throw fail("empty path; expected a file path") }
        guard !path.contains(0) else { throw fail("the path contains a NUL byte") }
        guard !l.isEmpty else { throw fail("empty label; expected a class name") }
        return ManifestRow(line: line, path: p, label: l)
    }

    /// RFC 4180 records over bytes, one at a time.
    private struct CSVRecords {
        let bytes: [UInt8]
        var pos: Int
        /// The physical line `pos` is on (1-based).
        var line = 1

        init(_ bytes: [UInt8]) {
            self.bytes = bytes
            pos = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        }

        /// Consumes a line break at `pos` (LF, CRLF or CR) if there is one.
        private mutating func lineBreak() -> Bool {
            guard pos < bytes.count else { return false }
            if bytes[pos] == 0x0A { pos += 1; line += 1; return true }
            if bytes[pos] == 0x0D {
                pos += pos + 1 < bytes.count && bytes[pos + 1] == 0x0A ? 2 : 1
                line += 1
                return true
            }
            return false
        }

        /// The next non-empty record and the line it starts on, or nil at the end.
        mutating func next(source: String) throws -> (line: Int, fields: [[UInt8]])? {
            while lineBreak() {}
            guard pos < bytes.count else { return nil }
            let start = line
            func fail(_ reason: String) -> ImageFileListError {
                ImageFileListError(path: source, .malformedRow(line: start, reason: reason))
            }
            var fields: [[UInt8]] = []
            while true {
                var field: [UInt8] = []
                if pos < bytes.count && bytes[pos] == UInt8(ascii: "\"") {
                    let quoteLine = line
                    pos += 1
                    while true {
                        guard pos < bytes.count else {
                            throw fail("the quoted field opened on line \(quoteLine) is never closed; expected a"
                                       + " closing \"")
                        }
                        let b = bytes[pos]
                        if b == UInt8(ascii: "\"") {
                            if pos + 1 < bytes.count && bytes[pos + 1] == UInt8(ascii: "\"") {
                                field.append(b); pos += 2; continue
                            }
                            pos += 1
                            break
                        }
                        if b == 0x0A || (b == 0x0D && !(pos + 1 < bytes.count && bytes[pos + 1] == 0x0A)) { line += 1 }
                        field.append(b)
                        pos += 1
                    }
                    if pos < bytes.count && bytes[pos] != UInt8(ascii: ",") && bytes[pos] != 0x0A && bytes[pos] != 0x0D {
                        throw fail("unexpected characters after the closing quote of field \(fields.count + 1);"
                                   + " expected a comma or the end of the line")
                    }
                } else {
                    while pos < bytes.count, bytes[pos] != UInt8(ascii: ","), bytes[pos] != 0x0A, bytes[pos] != 0x0D {
                        if bytes[pos] == UInt8(ascii: "\"") {
                            throw fail("a quote inside the unquoted field \(fields.count + 1); expected the whole"
                                       + " field in quotes with inner quotes doubled (\"\")")
                        }
                        field.append(bytes[pos])
                        pos += 1
                    }
                }
                fields.append(field)
                if pos < bytes.count && bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                _ = lineBreak()
                return (start, fields)
            }
        }
    }

    // MARK: JSONL

    /// The rows of a JSONL manifest (format and errors: ``jsonlManifest(at:classes:)``; files not checked).
    static func parseJSONLManifest(_ input: [UInt8], source: String) throws -> [ManifestRow] {
        let body = input.starts(with: [0xEF, 0xBB, 0xBF]) ? input.dropFirst(3) : input[...]
        var rows: [ManifestRow] = []
        for (i, text) in body.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let line = i + 1
            func fail(_ reason: String) -> ImageFileListError {
                ImageFileListError(path: source, .malformedRow(line: line, reason: reason))
            }
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard String(validating: text, as: UTF8.self) != nil else { throw fail("not valid UTF-8") }
            let value: JSONValue
            do {
                value = try JSONParser.parse(Array(text), inputName: "line")
            } catch let e as JSONParseError {
                throw fail("invalid JSON at column \(e.offset + 1): \(e.message)")
            }
            guard case .object(let members) = value else {
                throw fail("expected a JSON object {\"path\": ..., \"label\": ...}, found \(value.typeName)")
            }
            func string(_ key: String) throws -> [UInt8] {
                guard let member = members.first(where: { $0.key == key }) else {
                    throw fail("the object has no \"\(key)\" member; expected {\"path\": ..., \"label\": ...}")
                }
                guard case .string(let s) = member.value else {
                    throw fail("\"\(key)\" is \(member.value.typeName); expected a string")
                }
                return Array(s.utf8)
            }
            rows.append(try row(line: line, path: string("path"), label: string("label"), source: source))
        }
        return rows
    }
}
