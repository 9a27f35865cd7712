// Shared by every fuzz target (compiled into each binary by launch/fuzz): a private scratch directory
// for loaders that read from paths, and helpers to split one fuzz input into parameters and files.
import Foundation

enum FuzzScratch {
    /// One directory per fuzzer process, in RAM when /dev/shm exists; removed at exit.
    static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = "\(base)/selora-fuzz-\(getpid())"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: FuzzScratch.directory) }
        return dir
    }()

    /// Writes `bytes` to `name` inside the scratch directory (replacing it) and returns its path.
    static func write<C: Collection>(_ bytes: C, _ name: String) -> String where C.Element == UInt8 {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        let array = Array(bytes)
        var done = 0
        array.withUnsafeBytes { raw in
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                precondition(n > 0, "cannot write \(path)")
                done += n
            }
        }
        close(fd)
        return path
    }
}

/// With SELORA_FUZZ_VERBOSE=1 in the environment, targets print what each input led to (for replaying inputs).
/// The message is built either way: error descriptions are code under test too.
let fuzzVerbose = ProcessInfo.processInfo.environment["SELORA_FUZZ_VERBOSE"] == "1"

func fuzzNote(_ message: String) {
    if fuzzVerbose { FileHandle.standardError.write(Data((message + "\n").utf8)) }
}

/// Reads a fuzz input front to back: a few parameter bytes (0 when the input is shorter), then the files.
struct FuzzInput {
    let bytes: UnsafeBufferPointer<UInt8>
    var pos = 0

    init(_ data: UnsafePointer<UInt8>, _ size: Int) { bytes = UnsafeBufferPointer(start: data, count: size) }

    mutating func byte() -> UInt8 {
        guard pos < bytes.count else { return 0 }
        defer { pos += 1 }
        return bytes[pos]
    }

    /// A big-endian u16 length, then up to that many bytes.
    mutating func chunk() -> ArraySlice<UInt8> {
        let n = Int(byte()) << 8 | Int(byte())
        let end = min(bytes.count, pos + n)
        defer { pos = end }
        return Array(bytes[min(pos, end)..<end])[...]
    }

    /// Everything not consumed yet.
    mutating func rest() -> ArraySlice<UInt8> {
        defer { pos = bytes.count }
        return Array(bytes[min(pos, bytes.count)...])[...]
    }
}

/// Runs `body`: an error of one of the `expected` types is a clean rejection (its description is built and noted),
/// any other error stops the fuzzer as a crash naming `what`.
func fuzzExpecting(_ expected: [Error.Type], _ what: String, _ body: () throws -> Void) {
    do {
        try body()
    } catch {
        guard expected.contains(where: { ObjectIdentifier($0) == ObjectIdentifier(type(of: error)) }) else {
            fatalError("\(what) threw an unexpected error type: \(type(of: error)) \(error)")
        }
        fuzzNote("error: \(error)")
    }
}
