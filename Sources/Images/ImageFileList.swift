import Glibc

/// A labelled list of image files: what an image data set is before any file is decoded.
///
/// Item `i` is the file ``path(at:)`` with label `labels[i]`, an index into ``classNames``. Built from a torchvision
/// ImageFolder tree (``imageFolder(root:)``) or from a CSV or JSONL manifest (``csvManifest(at:classes:)``,
/// ``jsonlManifest(at:classes:)``, ``manifest(at:classes:)``). Which items a rank reads in which step is
/// `EpochSampler`'s business (`Datasets`): build it with `count: list.count` and look its indices up here.
///
/// Names are compared as Python compares `str`: **byte for byte** (code point by code point), never with Swift's
/// `String ==` / `<`, which treat canonically equivalent strings (`"Ä"` and `"A\u{308}"`) as equal. Two folders
/// whose names differ only in Unicode normalization are two classes, as in torchvision.
public struct ImageFileList: Sendable, CustomStringConvertible {
    /// The directory relative entries of ``paths`` are resolved against ("" = the working directory): the
    /// ImageFolder root, or the manifest's directory.
    public let root: String
    /// Each item's path as stored: relative to ``root`` unless it starts with "/".
    public let paths: [String]
    /// Each item's class, in `0 ..< numClasses`.
    public let labels: [Int32]
    /// The class names in label order (label `k` is `classNames[k]`).
    public let classNames: [String]
    /// Where the list was read from (the ImageFolder root or the manifest file), for messages.
    public let source: String

    /// The image extensions torchvision's `ImageFolder` accepts (`torchvision.datasets.folder.IMG_EXTENSIONS`),
    /// matched case-insensitively (ASCII) at the end of a file name.
    public static let imageExtensions = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"]

    /// A list from its parts, checked.
    ///
    /// - Throws: ``ImageFileListError`` `.invalidArgument` (path `source`) unless `paths` and `labels` have the same
    ///   count, every label is in `0 ..< classNames.count`, `classNames` is non-empty with distinct (byte for byte)
    ///   non-empty names, and every path is non-empty without a NUL byte.
    public init(root: String, paths: [String], labels: [Int32], classNames: [String], source: String) throws {
        func fail(_ text: String) -> ImageFileListError { ImageFileListError(path: source, .invalidArgument(text)) }
        guard paths.count == labels.count else {
            throw fail("\(paths.count) paths but \(labels.count) labels; expected one label per path")
        }
        try ImageFileList.checkClassNames(classNames, source: source)
        if let i = labels.firstIndex(where: { $0 < 0 || Int($0) >= classNames.count }) {
            throw fail("label \(labels[i]) of item \(i) is out of range; expected 0 ..< \(classNames.count)")
        }
        if let i = paths.firstIndex(where: { $0.isEmpty || $0.utf8.contains(0) }) {
            throw fail("path of item \(i) is empty or contains a NUL byte")
        }
        self.root = root
        self.paths = paths
        self.labels = labels
        self.classNames = classNames
        self.source = source
    }

    /// Throws `.invalidArgument` (path `source`) unless `names` is non-empty with distinct (byte for byte),
    /// non-empty names.
    static func checkClassNames(_ names: [String], source: String) throws {
        func fail(_ text: String) -> ImageFileListError { ImageFileListError(path: source, .invalidArgument(text)) }
        guard !names.isEmpty else { throw fail("the class list is empty; expected at least one class") }
        var seen = Set<[UInt8]>()
        for (k, name) in names.enumerated() {
            guard !name.isEmpty else { throw fail("class \(k) has an empty name") }
            guard seen.insert(Array(name.utf8)).inserted else {
                throw fail("class name \(ImageFileListError.quote(name)) appears twice in the class list")
            }
        }
    }

    /// Number of items.
    public var count: Int { paths.count }

    /// Number of classes (`classNames.count`).
    public var numClasses: Int { classNames.count }

    /// The file of item `index` as it can be opened: `paths[index]` if it starts with "/", else
    /// `root + "/" + paths[index]` (just `paths[index]` when `root` is empty).
    /// Precondition: `0 <= index < count`, as for an array subscript.
    public func path(at index: Int) -> String { ImageFileList.join(root, paths[index]) }

    /// `path` if absolute, else `root/path` ("" root: `path`).
    static func join(_ root: String, _ path: String) -> String {
        if path.utf8.first == UInt8(ascii: "/") || root.isEmpty { return path }
        return root.utf8.last == UInt8(ascii: "/") ? root + path : root + "/" + path
    }

    /// Items per class: element `k` counts the labels equal to `k`.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: numClasses)
        for label in labels { counts[Int(label)] += 1 }
        return counts
    }

    public var description: String {
        "ImageFileList(\(source): \(count) files, \(numClasses) classes \(ImageFileListError.list(classNames)))"
    }

    // MARK: Class lists of two lists (train and test)

    /// Checks that `self` (e.g. the test list) has exactly the classes of `other` (e.g. the train list), in the
    /// same order, compared byte for byte — so label `k` means the same class in both.
    ///
    /// - Throws: ``ImageFileListError`` `.classMismatch` (path: `self.source`) naming both lists and the first index
    ///   where they differ (an index past the end of the shorter list when one is a prefix of the other).
    public func checkSameClasses(as other: ImageFileList) throws {
        let n = min(classNames.count, other.classNames.count)
        let firstDifference = (0..<n).first { !ImageFileList.sameBytes(classNames[$0], other.classNames[$0]) }
            ?? (classNames.count == other.classNames.count ? nil : n)
        if let index = firstDifference {
            throw ImageFileListError(path: source, .classMismatch(
                classes: classNames, otherPath: other.source, otherClasses: other.classNames, index: index))
        }
    }

    /// This list with its labels renumbered into `other`'s classes: item `i` keeps its file and gets the label
    /// of its class name in `other.classNames`; ``classNames`` becomes `other.classNames`. For a test set whose
    /// folders are a subset of the training set's, or in another order. Classes of `other` absent here are fine.
    ///
    /// - Throws: ``ImageFileListError`` `.classesNotInOther` (path: `self.source`) naming every class of `self`
    ///   that `other` does not have (even if no item uses it).
    public func remapped(toClassesOf other: ImageFileList) throws -> ImageFileList {
        var index = [[UInt8]: Int32]()
        for (k, name) in other.classNames.enumerated() { index[Array(name.utf8)] = Int32(k) }
        let mapping = classNames.map { index[Array($0.utf8)] }
        let missing = zip(classNames, mapping).filter { $0.1 == nil }.map(\.0)
        guard missing.isEmpty else {
            throw ImageFileListError(path: source, .classesNotInOther(
                missing: missing, otherPath: other.source, otherClasses: other.classNames))
        }
        return try ImageFileList(root: root, paths: paths, labels: labels.map { mapping[Int($0)] ?? -1 },
                                 classNames: other.classNames, source: source)
    }

    // MARK: Byte-wise string comparison (Python's str order)

    /// True when `a` and `b` have the same UTF-8 bytes (Python's `a == b`; Swift's `==` also equates canonically
    /// equivalent strings).
    static func sameBytes(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    /// Python's `a < b` for `str`: code point order, which for valid UTF-8 is the order of the bytes.
    static func codePointLess(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
}

extension ImageFileList: Equatable {
    /// Equal when every field is equal byte for byte (see the type's discussion of name comparison).
    public static func == (a: ImageFileList, b: ImageFileList) -> Bool {
        func same(_ x: [String], _ y: [String]) -> Bool { x.count == y.count && zip(x, y).allSatisfy(sameBytes) }
        return a.labels == b.labels && sameBytes(a.root, b.root) && sameBytes(a.source, b.source)
            && same(a.paths, b.paths) && same(a.classNames, b.classNames)
    }
}

/// The file-system calls the readers share.
enum FileSystem {
    /// What `stat` (following symbolic links) says `path` is; `.missing(reason)` when it fails.
    enum Kind: Equatable { case directory, regularFile, other, missing(String) }

    static func kind(_ path: String) -> Kind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing(errorText()) }
        return kind(mode: st.st_mode)
    }

    /// ``kind(_:)`` of the entry `name` of the open directory `dir` (`fstatat`, following links).
    static func kind(in dir: OpaquePointer, name: UnsafePointer<CChar>) -> Kind {
        var st = stat()
        guard fstatat(dirfd(dir), name, &st, 0) == 0 else { return .missing(errorText()) }
        return kind(mode: st.st_mode)
    }

    private static func kind(mode: mode_t) -> Kind {
        switch mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regularFile
        default: return .other
        }
    }

    /// `(st_dev, st_ino)` of a directory (following links), or nil if `stat` fails.
    static func identity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    /// The system's message for the current `errno`.
    static func errorText() -> String { String(cString: strerror(errno)) }
}
