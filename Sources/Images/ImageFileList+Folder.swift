import Glibc

extension ImageFileList {
    /// How deep ``imageFolder(root:)`` follows sub-directories of a class folder before it reports a loop.
    public static let maxFolderDepth = 64

    /// Reads a torchvision `ImageFolder` tree `root/<class>/…/<file>`, giving the items in torchvision's order.
    ///
    /// Exact definition (torchvision 0.2x `DatasetFolder.find_classes` and `make_dataset`, with the differences
    /// marked *deviation*):
    /// - **Classes** are the sub-directories of `root` (symbolic links followed), sorted in Python's `str` order:
    ///   by code point, i.e. by UTF-8 bytes — `"B" < "_x" < "a" < "Ä"`, and `"A\u{308}"` (decomposed Ä) before
    ///   `"B"` —, never by locale. Class `k` is the `k`-th. *Deviation*: hidden directories (name starting with
    ///   `.`, e.g. `.ipynb_checkpoints`) are skipped; torchvision would make them classes.
    /// - **Files** of a class: every directory of the class folder's tree (the folder itself and its
    ///   sub-directories at any depth, links followed, as `os.walk(followlinks=True)`) in the order of their full
    ///   paths (code points), and within each directory its file names sorted by code point. A file is kept when its
    ///   name ends with one of ``imageExtensions``, compared ignoring ASCII case. *Deviation*: hidden files and
    ///   directories are skipped (torchvision keeps e.g. macOS `._x.jpg` resource forks, which then fail to load).
    /// - ``paths`` are relative to `root` (`<class>/<sub>/<file>`); ``root`` is `root` as given.
    ///
    /// - Throws: ``ImageFileListError`` with the path at fault: `.unreadable` (root or a folder missing or not
    ///   readable), `.notADirectory`, `.noClassFolders`, `.emptyClassFolder` (naming the first empty class folder in
    ///   class order and listing the others; torchvision raises `FileNotFoundError` for it too), `.nameNotUTF8`
    ///   (a directory, or a file with an image extension, whose name is not UTF-8), `.notARegularFile` (an image
    ///   name that is a dangling link, FIFO, …), `.directoryLoop` (a sub-directory that is its own ancestor through
    ///   links, or a tree deeper than ``maxFolderDepth``).
    public static func imageFolder(root: String) throws -> ImageFileList {
        switch FileSystem.kind(root) {
        case .directory: break
        case .missing(let reason): throw ImageFileListError(path: root, .unreadable(reason: reason))
        case .regularFile, .other: throw ImageFileListError(path: root, .notADirectory)
        }
        let classNames = try listDirectory(root).filter(\.isDirectory).map(\.name).sorted(by: codePointLess)
        guard !classNames.isEmpty else { throw ImageFileListError(path: root, .noClassFolders) }
        var paths: [String] = [], labels: [Int32] = [], empty: [String] = []
        for (k, name) in classNames.enumerated() {
            let files = try filesOfClass(root: root, className: name)
            if files.isEmpty { empty.append(join(root, name)) }
            paths += files
            labels += repeatElement(Int32(k), count: files.count)
        }
        if let first = empty.first {
            throw ImageFileListError(path: first, .emptyClassFolder(alsoEmpty: Array(empty.dropFirst())))
        }
        return try ImageFileList(root: root, paths: paths, labels: labels, classNames: classNames, source: root)
    }

    /// The image files of one class folder, relative to `root`, in torchvision's order (see ``imageFolder(root:)``).
    private static func filesOfClass(root: String, className: String) throws -> [String] {
        // (path relative to root, image file names sorted) of every directory of the tree.
        var directories: [(relative: String, files: [String])] = []
        var ancestors: [[UInt64]] = []
        func walk(_ relative: String, depth: Int) throws {
            let full = join(root, relative)
            guard depth <= maxFolderDepth, let id = FileSystem.identity(full), !ancestors.contains(id) else {
                if case .missing(let reason) = FileSystem.kind(full) {
                    throw ImageFileListError(path: full, .unreadable(reason: reason))
                }
                throw ImageFileListError(path: full, .directoryLoop(maxDepth: maxFolderDepth))
            }
            ancestors.append(id)
            defer { ancestors.removeLast() }
            var files: [String] = [], subdirectories: [String] = []
            for entry in try listDirectory(full) {
                if entry.isDirectory { subdirectories.append(entry.name) } else { files.append(entry.name) }
            }
            directories.append((relative, files.sorted(by: codePointLess)))
            for sub in subdirectories { try walk(relative + "/" + sub, depth: depth + 1) }
        }
        try walk(className, depth: 1)
        directories.sort { codePointLess($0.relative, $1.relative) }
        return directories.flatMap { d in d.files.map { d.relative + "/" + $0 } }
    }

    /// One entry of a directory that the ImageFolder reader keeps.
    private struct Entry { var name: String; var isDirectory: Bool }

    /// The non-hidden sub-directories and image files of `directory` (links followed), in no particular order.
    /// Other entries (hidden ones, files without an image extension) are left out without looking at them further.
    private static func listDirectory(_ directory: String) throws -> [Entry] {
        guard let dir = opendir(directory) else {
            throw ImageFileListError(path: directory, .unreadable(reason: FileSystem.errorText()))
        }
        defer { closedir(dir) }
        var entries: [Entry] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw ImageFileListError(path: directory, .unreadable(reason: FileSystem.errorText())) }
                return entries
            }
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes.first == UInt8(ascii: ".") || bytes.isEmpty { continue }  // hidden, ".", ".."
            let isImage = hasImageExtension(bytes)
            // d_type may be DT_UNKNOWN or a link: decide with stat, which follows links, as os.walk does.
            let kind = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: bytes.count + 1) { FileSystem.kind(in: dir, name: $0) }
            }
            guard let name = String(validating: bytes, as: UTF8.self) else {
                if isImage || kind == .directory {
                    throw ImageFileListError(path: directory, .nameNotUTF8(escaped: escape(bytes)))
                }
                continue
            }
            switch kind {
            case .directory: entries.append(Entry(name: name, isDirectory: true))
            case .regularFile: if isImage { entries.append(Entry(name: name, isDirectory: false)) }
            case .other, .missing:
                if isImage { throw ImageFileListError(path: directory + "/" + name, .notARegularFile) }
            }
        }
    }

    /// True when the name ends with one of ``imageExtensions``, ignoring ASCII case.
    static func hasImageExtension<C: Collection>(_ name: C) -> Bool where C.Element == UInt8 {
        let lower = name.suffix(5).map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 0x20 : $0 }
        return imageExtensions.contains { lower.reversed().starts(with: $0.utf8.reversed()) }
    }

    /// ASCII bytes as they are (printable ones), every other byte as `\xNN`.
    static func escape(_ bytes: [UInt8]) -> String {
        bytes.map { $0 >= 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\\")
            ? String(UnicodeScalar($0)) : "\\x" + (($0 < 16 ? "0" : "") + String($0, radix: 16)) }.joined()
    }
}
