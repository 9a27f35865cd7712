import Foundation

/// Every failure of ``ImageFileList``'s readers and checks. `path` is the directory, folder or manifest file at
/// fault; the description always starts with it, then the manifest line (1-based) where one applies, and says what
/// was expected and what was found.
public struct ImageFileListError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public var path: String
    public var kind: Kind

    public init(path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public enum Kind: Equatable, Sendable {
        /// The directory or file could not be opened or read (`reason` is the system's message).
        case unreadable(reason: String)
        /// An ImageFolder root that exists but is not a directory.
        case notADirectory
        /// An ImageFolder root without a (non-hidden) sub-directory.
        case noClassFolders
        /// The class folder `path` (and the others in `alsoEmpty`, full paths) holds no image file.
        case emptyClassFolder(alsoEmpty: [String])
        /// A directory entry whose name is not valid UTF-8 (`escaped`: its bytes, non-ASCII ones as `\xNN`).
        case nameNotUTF8(escaped: String)
        /// An entry with an image extension that is not a regular file once symbolic links are followed
        /// (a dangling link, a FIFO, ...).
        case notARegularFile
        /// A directory is its own ancestor through symbolic links (`path`), or the tree is deeper than `maxDepth`.
        case directoryLoop(maxDepth: Int)
        /// A manifest line that cannot be read as a row (`reason` says what was expected).
        case malformedRow(line: Int, reason: String)
        /// A manifest row whose file does not exist or is not a regular file (`file`: the path as resolved).
        case missingFile(line: Int, file: String, reason: String)
        /// A manifest row whose label is not one of the given `classes`.
        case unknownLabel(line: Int, label: String, classes: [String])
        /// A manifest row naming the same file as the row on `firstLine` (compared after lexical normalization).
        case duplicatePath(line: Int, file: String, firstLine: Int)
        /// A manifest without any row.
        case noRows
        /// The class list of `path` differs from the list of `otherPath`: first at `index` (a missing entry is nil).
        case classMismatch(classes: [String], otherPath: String, otherClasses: [String], index: Int)
        /// Classes of `path` that the list of `otherPath` does not have (remapping one list onto another's classes).
        case classesNotInOther(missing: [String], otherPath: String, otherClasses: [String])
        /// A parameter (a given class list, labels, counts) is invalid.
        case invalidArgument(String)
    }

    public var errorDescription: String? { description }

    public var description: String {
        let message: String
        switch kind {
        case .unreadable(let reason):
            message = "cannot read: \(reason)"
        case .notADirectory:
            message = "not a directory; expected an ImageFolder root (root/<class>/<image file>)"
        case .noClassFolders:
            message = "no class folder; expected at least one sub-directory (root/<class>/<image file>; hidden ones"
                + " are skipped)"
        case .emptyClassFolder(let others):
            message = "class folder without an image file; expected at least one file with an extension of "
                + ImageFileList.imageExtensions.joined(separator: " ") + " (case-insensitive; hidden files skipped)"
                + (others.isEmpty ? "" : "; also empty: " + others.joined(separator: ", "))
        case .nameNotUTF8(let escaped):
            message = "the entry \"\(escaped)\" has a name that is not valid UTF-8; expected UTF-8 names"
        case .notARegularFile:
            message = "has an image extension but is not a regular file (a dangling symbolic link?)"
        case .directoryLoop(let maxDepth):
            message = "directory loop through symbolic links, or nested deeper than \(maxDepth) levels"
        case .malformedRow(let line, let reason):
            message = "line \(line): \(reason)"
        case .missingFile(let line, let file, let reason):
            message = "line \(line): the file \(file) \(reason); expected an existing image file"
        case .unknownLabel(let line, let label, let classes):
            message = "line \(line): unknown label \(ImageFileListError.quote(label)); expected one of the"
                + " \(classes.count) classes \(ImageFileListError.list(classes))"
        case .duplicatePath(let line, let file, let firstLine):
            message = "line \(line): \(file) is listed again (first on line \(firstLine)); expected every file once"
        case .noRows:
            message = "no rows; expected at least one image"
        case .classMismatch(let classes, let otherPath, let otherClasses, let index):
            func at(_ names: [String]) -> String { index < names.count ? ImageFileListError.quote(names[index]) : "none" }
            message = "its class list differs from that of \(otherPath) at index \(index): \(at(classes)) here,"
                + " \(at(otherClasses)) there; \(classes.count) classes \(ImageFileListError.list(classes)) here,"
                + " \(otherClasses.count) classes \(ImageFileListError.list(otherClasses)) in \(otherPath)"
        case .classesNotInOther(let missing, let otherPath, let otherClasses):
            message = "classes \(ImageFileListError.list(missing)) are not among the \(otherClasses.count) classes"
                + " \(ImageFileListError.list(otherClasses)) of \(otherPath)"
        case .invalidArgument(let text):
            message = "invalid argument: \(text)"
        }
        return "\(path): \(message)"
    }

    /// `"name"` with `"` and `\` and control characters escaped as in JSON.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20 || u.value == 0x7f:
                out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// `[a, b, …]` of quoted names; lists longer than 20 keep the first 10 and the last 5.
    static func list(_ names: [String]) -> String {
        let quoted = names.count <= 20
            ? names.map(quote)
            : names.prefix(10).map(quote) + ["… \(names.count - 15) more …"] + names.suffix(5).map(quote)
        return "[" + quoted.joined(separator: ", ") + "]"
    }
}
