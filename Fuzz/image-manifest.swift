// libFuzzer target: ImageFileList.csvManifest / jsonlManifest (Images) on arbitrary manifest bytes, in a scratch
// directory holding the image files a.png, b.png, sub/c.png and the directory d.png.
// Input: [options][manifest bytes]
//   options bit 0: 0 = CSV, 1 = JSONL; bit 1: pass the class list ["cat", "dog", "a b"] instead of nil.
// Every accepted manifest must give a list whose invariants hold and whose rows equal the parser's alone; every
// rejection must be an ImageFileListError whose description starts with the manifest's path.
import Foundation
@testable import Images

/// The scratch files the manifests may name (created once per process).
let imageFiles: Void = {
    _ = FuzzScratch.write([0x89, 0x50], "a.png")
    _ = FuzzScratch.write([0x89, 0x50], "b.png")
    mkdir(FuzzScratch.directory + "/sub", 0o755)
    mkdir(FuzzScratch.directory + "/d.png", 0o755)
    let c = open(FuzzScratch.directory + "/sub/c.png", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if c >= 0 { close(c) }
}()

let givenClasses = ["cat", "dog", "a b"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    _ = imageFiles
    var input = FuzzInput(data, size)
    let options = input.byte()
    let jsonl = options & 1 != 0
    let classes: [String]? = options & 2 != 0 ? givenClasses : nil
    let bytes = Array(input.rest())
    let path = FuzzScratch.write(bytes, jsonl ? "manifest.jsonl" : "manifest.csv")
    do {
        let list = jsonl ? try ImageFileList.jsonlManifest(at: path, classes: classes)
                         : try ImageFileList.csvManifest(at: path, classes: classes)
        let rows = jsonl ? try! ImageFileList.parseJSONLManifest(bytes, source: path)
                         : try! ImageFileList.parseCSVManifest(bytes, source: path)
        precondition(list.count > 0 && list.count == rows.count && list.labels.count == list.count)
        precondition(zip(rows, list.paths).allSatisfy { ImageFileList.sameBytes($0.path, $1) })
        precondition(zip(rows, list.labels).allSatisfy { ImageFileList.sameBytes($0.label, list.classNames[Int($1)]) })
        if let classes { precondition(list.classNames == classes) }
        precondition(Set(list.classNames.map { Array($0.utf8) }).count == list.numClasses)
        precondition(list.classCounts().reduce(0, +) == list.count)
        for i in 0..<list.count { precondition(FileSystem.kind(list.path(at: i)) == .regularFile) }
        // A list accepted once is accepted by the checked initializer and agrees with itself.
        let again = try ImageFileList(root: list.root, paths: list.paths, labels: list.labels,
                                      classNames: list.classNames, source: list.source)
        precondition(again == list)
        try list.checkSameClasses(as: again)
        fuzzNote("loaded \(list)")
    } catch let e as ImageFileListError {
        precondition(e.description.hasPrefix(e.path + ": "), "error without its path: \(e)")
        fuzzNote("error: \(e)")
    } catch {
        fatalError("the manifest reader threw a non-ImageFileListError: \(error)")
    }
    return 0
}
