import Datasets
import Foundation
import XCTest
@testable import Images

/// A scratch directory per test, removed afterwards; files are made with POSIX calls so names keep their bytes.
class ScratchDirectoryTestCase: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "selora-images-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Creates `dir/relative` (and its parent directories) holding `contents`; returns the full path.
    @discardableResult
    func file(_ relative: String, _ contents: String = "x") throws -> String {
        let path = dir + "/" + relative
        try mkdirs((path as NSString).deletingLastPathComponent)
        guard FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)) else {
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot create \(path)"])
        }
        return path
    }

    /// Creates `dir/name` with exactly `bytes`; returns the full path.
    func rawFile(_ name: String, _ bytes: Data) throws -> String {
        let path = dir + "/" + name
        guard FileManager.default.createFile(atPath: path, contents: bytes) else {
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot create \(path)"])
        }
        return path
    }

    func mkdirs(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The error `body` throws, as an ``ImageFileListError`` (a failure if it throws nothing or something else).
    func error(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> ImageFileListError? {
        do {
            _ = try body()
            XCTFail("expected an ImageFileListError, got a result", file: file, line: line)
        } catch let e as ImageFileListError {
            return e
        } catch {
            XCTFail("expected an ImageFileListError, got \(error)", file: file, line: line)
        }
        return nil
    }

    /// Asserts that the description contains every fragment.
    func assertMessage(_ e: ImageFileListError?, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        guard let e else { return }
        for f in fragments where !e.description.contains(f) {
            XCTFail("\"\(e.description)\" does not contain \"\(f)\"", file: file, line: line)
        }
    }
}

final class ImageFolderTests: ScratchDirectoryTestCase {
    /// Code-point order, not locale order (`a` before `B`) nor Swift's `String <` (which puts the decomposed
    /// `A\u{308}` after `B`, being canonically equal to `Ä`). Expected lists computed with Python's
    /// `sorted(os.walk(..., followlinks=True))` + `sorted(fnames)` on the same tree.
    func testClassAndFileOrderIsPythonCodePointOrder() throws {
        let nfd = "A\u{308}"
        for name in ["B", "a", "_x", "Ä", nfd] { try file("\(name)/img.png") }
        try file("a/b.png"); try file("a/B.PNG"); try file("a/a10.jpg"); try file("a/a2.JpEg")
        try file("a/notes.txt"); try file("a/x.png.bak"); try file("a/.hidden.png"); try file("a/d.TIFF")
        try file("a/s/t/deep.webp"); try file("a/s-u/dash.bmp"); try file("a/s/mid.ppm")
        try file(".ipynb_checkpoints/z.png"); try file("loose.png")
        let list = try ImageFileList.imageFolder(root: dir)
        XCTAssertEqual(list.classNames.map { Array($0.utf8) }, [nfd, "B", "_x", "a", "Ä"].map { Array($0.utf8) })
        XCTAssertEqual(list.paths, ["\(nfd)/img.png", "B/img.png", "_x/img.png",
                                    "a/B.PNG", "a/a10.jpg", "a/a2.JpEg", "a/b.png", "a/d.TIFF", "a/img.png",
                                    "a/s/mid.ppm", "a/s-u/dash.bmp", "a/s/t/deep.webp", "Ä/img.png"])
        XCTAssertEqual(list.labels, [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4])
        XCTAssertEqual(list.count, 13)
        XCTAssertEqual(list.numClasses, 5)
        XCTAssertEqual(list.classCounts(), [1, 1, 1, 9, 1])
        XCTAssertEqual(list.path(at: 1), dir + "/B/img.png")
        XCTAssertTrue(FileManager.default.fileExists(atPath: list.path(at: 11)))
        // Swift's own order would differ: the point of the byte-wise comparison.
        XCTAssertNotEqual(list.classNames.sorted().map { Array($0.utf8) }, list.classNames.map { Array($0.utf8) })
    }

    func testSymbolicLinksAreFollowed() throws {
        try file("real/a.png")
        try mkdirs(dir + "/root")
        try FileManager.default.createSymbolicLink(atPath: dir + "/root/linked", withDestinationPath: dir + "/real")
        try FileManager.default.createSymbolicLink(atPath: dir + "/real/b.png", withDestinationPath: dir + "/real/a.png")
        let list = try ImageFileList.imageFolder(root: dir + "/root")
        XCTAssertEqual(list.classNames, ["linked"])
        XCTAssertEqual(list.paths, ["linked/a.png", "linked/b.png"])
    }

    func testMissingRootIsUnreadable() {
        let e = error { try ImageFileList.imageFolder(root: dir + "/nope") }
        XCTAssertEqual(e?.path, dir + "/nope")
        assertMessage(e, [dir + "/nope: cannot read: No such file or directory"])
    }

    func testRootThatIsAFile() throws {
        let path = try file("f.png")
        assertMessage(error { try ImageFileList.imageFolder(root: path) }, [path + ": not a directory"])
    }

    func testUnreadableClassFolder() throws {
        try XCTSkipIf(getuid() == 0, "running as root: permissions do not stop reading a directory")
        try file("a/x.png")
        chmod(dir + "/a", 0)
        defer { chmod(dir + "/a", 0o755) }
        assertMessage(error { try ImageFileList.imageFolder(root: self.dir) }, [dir + "/a: cannot read: Permission denied"])
    }

    func testNoClassFolders() throws {
        try file("x.png"); try file(".hidden/y.png")
        assertMessage(error { try ImageFileList.imageFolder(root: self.dir) },
                      [dir + ": no class folder; expected at least one sub-directory"])
    }

    func testEmptyClassFoldersAreNamed() throws {
        try file("cat/a.png"); try file("dog/readme.txt"); try file("emu/.x.png"); try mkdirs(dir + "/zebra")
        let e = error { try ImageFileList.imageFolder(root: self.dir) }
        XCTAssertEqual(e?.path, dir + "/dog")
        XCTAssertEqual(e?.kind, .emptyClassFolder(alsoEmpty: [dir + "/emu", dir + "/zebra"]))
        assertMessage(e, [dir + "/dog: class folder without an image file", ".png", ".webp", "hidden files skipped",
                          "also empty: \(dir)/emu, \(dir)/zebra"])
    }

    func testDanglingLinkWithImageNameIsAnError() throws {
        try file("a/ok.png")
        try FileManager.default.createSymbolicLink(atPath: dir + "/a/gone.png", withDestinationPath: dir + "/nowhere.png")
        let e = error { try ImageFileList.imageFolder(root: self.dir) }
        assertMessage(e, [dir + "/a/gone.png: has an image extension but is not a regular file"])
    }

    func testNameThatIsNotUTF8() throws {
        try file("a/ok.png")
        let bad = Array((dir + "/a/").utf8) + [0x66, 0xFF, 0x2E, 0x70, 0x6E, 0x67, 0]  // "f\xFF.png"
        let fd = bad.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bad.count) { open($0, O_CREAT | O_WRONLY, 0o644) }
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        let e = error { try ImageFileList.imageFolder(root: self.dir) }
        XCTAssertEqual(e?.kind, .nameNotUTF8(escaped: "f\\xff.png"))
        assertMessage(e, [dir + "/a: the entry \"f\\xff.png\" has a name that is not valid UTF-8"])
    }

    func testDirectoryLoopThroughALink() throws {
        try file("a/ok.png")
        try FileManager.default.createSymbolicLink(atPath: dir + "/a/again", withDestinationPath: dir + "/a")
        let e = error { try ImageFileList.imageFolder(root: self.dir) }
        XCTAssertEqual(e?.path, dir + "/a/again")
        assertMessage(e, ["directory loop through symbolic links"])
    }

    func testSamplerIndicesLookUpFiles() throws {
        for c in ["x", "y"] { for i in 0..<4 { try file("\(c)/\(i).png") } }
        let list = try ImageFileList.imageFolder(root: dir)
        let sampler = try EpochSampler(count: list.count, batchSize: 4, seed: 7)
        let position = EpochSampler.Position(epoch: 0, batchIndex: 1)
        let shard = try sampler.shard(try sampler.batch(at: position), rank: 1, worldSize: 2)
        XCTAssertEqual(shard.count, 2)
        for i in shard {
            XCTAssertEqual(list.path(at: i), dir + "/" + list.classNames[Int(list.labels[i])] + "/\(i % 4).png")
        }
    }
}

final class ManifestTests: ScratchDirectoryTestCase {
    func testCSVWithQuotesCommasBOMAndCRLF() throws {
        try file("imgs/a.png"); try file("imgs/b, \"c\".png"); try file("imgs/line\nbreak.png"); try file("abs.png")
        let text = "\u{FEFF}id,label,path\r\n1,dog,imgs/a.png\r\n\r\n2,\"cat, big\",\"imgs/b, \"\"c\"\".png\"\n"
            + "3,dog,\"imgs/line\nbreak.png\"\n4,ant,\(dir)/abs.png"
        let manifest = try file("m.csv", text)
        let list = try ImageFileList.csvManifest(at: manifest)
        XCTAssertEqual(list.classNames, ["ant", "cat, big", "dog"])
        XCTAssertEqual(list.paths, ["imgs/a.png", "imgs/b, \"c\".png", "imgs/line\nbreak.png", dir + "/abs.png"])
        XCTAssertEqual(list.labels, [2, 1, 2, 0])
        XCTAssertEqual(list.root, dir)
        XCTAssertEqual(list.path(at: 1), dir + "/imgs/b, \"c\".png")
        XCTAssertEqual(list.path(at: 3), dir + "/abs.png")
        // The same with a given class order.
        let given = try ImageFileList.csvManifest(at: manifest, classes: ["dog", "cat, big", "ant", "unused"])
        XCTAssertEqual(given.labels, [0, 1, 0, 2])
        XCTAssertEqual(given.numClasses, 4)
        // Rows are counted by physical line (the blank line and the quoted line break included): line 8.
        let bad = try file("bad.csv", text + "\n5,dog,imgs/zzz.png\n")
        assertMessage(error { try ImageFileList.csvManifest(at: bad) }, [bad + ": line 8: the file \(dir)/imgs/zzz.png"])
    }

    func testJSONL() throws {
        try file("a.png"); try file("sub/é.png")
        let text = "\u{FEFF}{\"path\": \"a.png\", \"label\": \"z\", \"extra\": [1, {\"x\": null}]}\r\n\n   \n"
            + "{\"label\":\"\\u00e9t\\u00e9\",\"path\":\"sub/\\u00e9.png\"}"
        let list = try ImageFileList.jsonlManifest(at: try file("m.jsonl", text))
        XCTAssertEqual(list.classNames, ["z", "été"])
        XCTAssertEqual(list.labels, [0, 1])
        XCTAssertEqual(list.paths, ["a.png", "sub/é.png"])
        XCTAssertEqual(try ImageFileList.manifest(at: dir + "/m.jsonl"), list)
    }

    func testManifestByExtension() throws {
        try file("a.png")
        let csv = try file("m.CSV", "path,label\na.png,x\n")
        XCTAssertEqual(try ImageFileList.manifest(at: csv).paths, ["a.png"])
        let other = try file("m.txt", "path,label\na.png,x\n")
        assertMessage(error { try ImageFileList.manifest(at: other) }, [other + ": invalid argument", ".csv, .jsonl"])
    }

    /// Writes each case's text to a manifest `case<i>.<ext>` and checks that reading it fails with a message that
    /// starts with the manifest's path and contains the fragment (an empty fragment: reading succeeds).
    func assertManifestErrors(_ cases: [(text: String, fragment: String)], ext: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        for (i, c) in cases.enumerated() {
            let path = try self.file("case\(i).\(ext)", c.text)
            if c.fragment.isEmpty {
                XCTAssertNoThrow(try ImageFileList.manifest(at: path), file: file, line: line)
            } else {
                assertMessage(error { try ImageFileList.manifest(at: path) }, [path + ": " + c.fragment], file: file, line: line)
            }
        }
    }

    /// Every CSV error names the manifest and the line.
    func testCSVErrors() throws {
        try file("a.png"); try file("b.png"); try mkdirs(dir + "/adir")
        let cases: [(String, String)] = [
            ("path,label\na.png,x\nmissing.png,x\n", "line 3: the file \(dir)/missing.png cannot be opened (No such file"),
            ("path,label\nadir,x\n", "line 2: the file \(dir)/adir is not a regular file"),
            ("path,label\na.png,x\nb.png,x,extra\n", "line 3: expected 2 comma-separated fields (as the header), found 3"),
            ("path,label\na.p\"ng,x\n", "line 2: a quote inside the unquoted field 1"),
            ("path,label\na.png,x\n\"b.png\nmore,x\n", "line 3: the quoted field opened on line 3 is never closed"),
            ("path,label\n\"a.png\"x,x\n", "line 2: unexpected characters after the closing quote of field 1"),
            ("file,label\na.png,x\n", "line 1: the header must name a \"path\" column exactly once; found the columns \"file\", \"label\""),
            ("path,label,label\na.png,x,y\n", "line 1: the header must name a \"label\" column exactly once"),
            ("path,label\n,x\n", "line 2: empty path"),
            ("path,label\na.png,\n", "line 2: empty label"),
            ("path,label\na.png,x\n./b.png,x\nx/../a.png,y\n", "line 4: \(dir)/x/../a.png is listed again (first on line 2)"),
            ("path,label\n\n", "no rows; expected at least one image"),
            ("", "no rows"),
            ("path,label\na.png,\u{FFFD}\n", ""),  // valid UTF-8 (U+FFFD itself): accepted
        ]
        try assertManifestErrors(cases, ext: "csv")
        let invalid = try rawFile("invalid.csv", Data("path,label\na.png,x\nb.png,\u{1}".utf8) + Data([0xC3, 0x28, 0x0A]))
        assertMessage(error { try ImageFileList.csvManifest(at: invalid) }, [invalid + ": line 3: the path or the label is not valid UTF-8"])
        let nul = try rawFile("nul.csv", Data("path,label\na.png\0x,x\n".utf8))
        assertMessage(error { try ImageFileList.csvManifest(at: nul) }, [nul + ": line 2: the path contains a NUL byte"])
    }

    func testUnknownLabelWithGivenClasses() throws {
        try file("a.png"); try file("b.png")
        let path = try file("m.csv", "path,label\na.png,cat\nb.png,Cat\n")
        let e = error { try ImageFileList.csvManifest(at: path, classes: ["cat", "dog"]) }
        XCTAssertEqual(e?.kind, .unknownLabel(line: 3, label: "Cat", classes: ["cat", "dog"]))
        assertMessage(e, [path + ": line 3: unknown label \"Cat\"; expected one of the 2 classes [\"cat\", \"dog\"]"])
        assertMessage(error { try ImageFileList.csvManifest(at: path, classes: ["cat", "dog", "cat"]) },
                      [path + ": invalid argument: class name \"cat\" appears twice"])
        assertMessage(error { try ImageFileList.csvManifest(at: path, classes: []) }, [path + ": invalid argument: the class list is empty"])
        // Canonically equivalent but different bytes: two classes, as in Python.
        let nfc = try file("n.csv", "path,label\na.png,\u{C4}\nb.png,A\u{308}\n")
        XCTAssertEqual(try ImageFileList.csvManifest(at: nfc).numClasses, 2)
    }

    func testJSONLErrors() throws {
        try file("a.png")
        let cases: [(String, String)] = [
            ("{\"path\": \"a.png\", \"label\": \"x\"}\n{\"path\": \"a.png\", \"label\": \"x\",}\n",
             "line 2: invalid JSON at column 32: unexpected character '}'; expected a string key"),
            ("{\"path\": \"a.png\", \"label\": \"x\"\n", "line 1: invalid JSON at column 31: unexpected end of line; expected ',' or '}'"),
            ("\n[\"a.png\", \"x\"]\n", "line 2: expected a JSON object {\"path\": ..., \"label\": ...}, found an array"),
            ("{\"path\": \"a.png\"}\n", "line 1: the object has no \"label\" member"),
            ("{\"path\": \"a.png\", \"label\": 3}\n", "line 1: \"label\" is the integer 3; expected a string"),
            ("{\"path\": \"a.png\", \"path\": \"b.png\", \"label\": \"x\"}\n", "line 1: invalid JSON at column 19: duplicate key \"path\""),
            ("{\"path\": \"a.png\", \"label\": \"x\"}\n{\"path\": \"gone.png\", \"label\": \"x\"}\n",
             "line 2: the file \(dir)/gone.png cannot be opened"),
            ("{\"path\": \"a.png\", \"label\": \"x\"}\n{\"path\": \"./a.png\", \"label\": \"y\"}\n",
             "line 2: \(dir)/./a.png is listed again (first on line 1)"),
            ("\n  \n", "no rows"),
        ]
        try assertManifestErrors(cases, ext: "jsonl")
        let path = try file("u.jsonl", "{\"path\": \"a.png\", \"label\": \"x\"}\n")
        assertMessage(error { try ImageFileList.jsonlManifest(at: path, classes: ["y"]) },
                      [path + ": line 1: unknown label \"x\"; expected one of the 1 classes [\"y\"]"])
        let invalid = try rawFile("bad.jsonl", Data("{\"path\": \"a.png\", \"label\": \"".utf8) + Data([0xFF]) + Data("\"}".utf8))
        assertMessage(error { try ImageFileList.jsonlManifest(at: invalid) }, [invalid + ": line 1: not valid UTF-8"])
    }

    func testMissingOrDirectoryManifest() throws {
        assertMessage(error { try ImageFileList.csvManifest(at: self.dir + "/none.csv") },
                      [dir + "/none.csv: cannot read: No such file or directory"])
        try mkdirs(dir + "/d.csv")
        assertMessage(error { try ImageFileList.csvManifest(at: self.dir + "/d.csv") }, [dir + "/d.csv: cannot read: is a directory"])
    }

    func testNormalization() {
        let cases = ["a//b": "a/b", "./a/./b/": "a/b", "c/../a/b": "a/b", "../x": "../x", "/../x": "/x", "a/..": ".",
                     "/": "/", "a/b/../../..": ".."]
        for (input, expected) in cases { XCTAssertEqual(ImageFileList.normalized(input), expected, input) }
    }
}

final class ClassListTests: ScratchDirectoryTestCase {
    func list(_ source: String, _ classes: [String], labels: [Int32] = [0]) throws -> ImageFileList {
        try ImageFileList(root: "", paths: labels.map { "f\($0).png" }, labels: labels, classNames: classes, source: source)
    }

    func testSameClassesAndTheFirstDifference() throws {
        let train = try list("train", ["a", "b", "c"])
        XCTAssertNoThrow(try list("test", ["a", "b", "c"]).checkSameClasses(as: train))
        let e = error { try self.list("test", ["a", "c", "b"]).checkSameClasses(as: train) }
        XCTAssertEqual(e?.kind, .classMismatch(classes: ["a", "c", "b"], otherPath: "train", otherClasses: ["a", "b", "c"], index: 1))
        assertMessage(e, ["test: its class list differs from that of train at index 1: \"c\" here, \"b\" there;"
                          + " 3 classes [\"a\", \"c\", \"b\"] here, 3 classes [\"a\", \"b\", \"c\"] in train"])
        assertMessage(error { try self.list("test", ["a", "b"]).checkSameClasses(as: train) },
                      ["at index 2: none here, \"c\" there"])
        assertMessage(error { try self.list("test", ["a", "b", "c", "d"]).checkSameClasses(as: train) },
                      ["at index 3: \"d\" here, none there"])
        // Canonically equivalent names are different classes.
        XCTAssertNotNil(error { try self.list("t", ["\u{C4}"]).checkSameClasses(as: try self.list("u", ["A\u{308}"])) })
    }

    func testRemapOntoTrainClasses() throws {
        let train = try list("train", ["ant", "bee", "cat", "dog"])
        let test = try list("test", ["cat", "ant"], labels: [0, 1, 1, 0])
        let mapped = try test.remapped(toClassesOf: train)
        XCTAssertEqual(mapped.labels, [2, 0, 0, 2])
        XCTAssertEqual(mapped.classNames, train.classNames)
        XCTAssertEqual(mapped.paths, test.paths)
        XCTAssertNoThrow(try mapped.checkSameClasses(as: train))
        let e = error { try self.list("test", ["cat", "emu", "fox"]).remapped(toClassesOf: train) }
        XCTAssertEqual(e?.kind, .classesNotInOther(missing: ["emu", "fox"], otherPath: "train", otherClasses: train.classNames))
        assertMessage(e, ["test: classes [\"emu\", \"fox\"] are not among the 4 classes [\"ant\", \"bee\", \"cat\", \"dog\"] of train"])
    }

    func testInitChecks() {
        assertMessage(error { try ImageFileList(root: "", paths: ["a"], labels: [], classNames: ["x"], source: "s") },
                      ["s: invalid argument: 1 paths but 0 labels"])
        assertMessage(error { try ImageFileList(root: "", paths: ["a"], labels: [1], classNames: ["x"], source: "s") },
                      ["label 1 of item 0 is out of range; expected 0 ..< 1"])
        assertMessage(error { try ImageFileList(root: "", paths: [""], labels: [0], classNames: ["x"], source: "s") },
                      ["path of item 0 is empty"])
        assertMessage(error { try ImageFileList(root: "", paths: ["a"], labels: [0], classNames: ["x", ""], source: "s") },
                      ["class 1 has an empty name"])
    }

    func testLongClassListsAreShortenedInMessages() {
        let names = (0..<30).map { "c\($0)" }
        let text = ImageFileListError.list(names)
        XCTAssertTrue(text.hasPrefix("[\"c0\", "), text)
        XCTAssertTrue(text.contains("… 15 more …, \"c25\""), text)
        XCTAssertEqual(ImageFileListError.quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"")
    }
}

/// The real data sets `launch/fetch-data` writes (skipped with a message when they are missing).
final class RealImageFolderTests: XCTestCase {
    static let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data").path

    func splits(_ name: String) throws -> (train: ImageFileList, test: ImageFileList) {
        let root = Self.data + "/" + name
        try XCTSkipUnless(FileManager.default.fileExists(atPath: root + "/train"),
                          "\(root) is missing: run launch/fetch-data to fetch it")
        let train = try ImageFileList.imageFolder(root: root + "/train")
        let test = try ImageFileList.imageFolder(root: root + "/test")
        try test.checkSameClasses(as: train)
        return (train, test)
    }

    func testELPV() throws {
        let (train, test) = try splits("elpv")
        XCTAssertEqual(train.count + test.count, 2624)
        XCTAssertEqual(train.classNames, ["p000", "p033", "p067", "p100"])
        XCTAssertEqual(train.classCounts(), [1131, 221, 79, 536])
        XCTAssertEqual(test.classCounts(), [377, 74, 27, 179])
        let names = Set((train.paths + test.paths).map { ($0 as NSString).lastPathComponent })
        XCTAssertEqual(names.count, 2624)
        XCTAssertTrue(names.contains("cell0001.png") && names.contains("cell2624.png"))
    }

    func testAnimalMNIST() throws {
        let (train, test) = try splits("animal-mnist")
        XCTAssertEqual(train.classNames, ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"])
        XCTAssertEqual(train.classCounts(), [Int](repeating: 800, count: 10))
        XCTAssertEqual(test.classCounts(), [Int](repeating: 200, count: 10))
    }
}
