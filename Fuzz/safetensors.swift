// libFuzzer target: SafeTensorsFile(data:path:) and, for every tensor it accepts, every typed accessor.
// Built by launch/fuzz (swiftc -sanitize=fuzzer,address); not part of Package.swift.
import Foundation
import SafeTensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(bytes: data, count: size)
    let file: SafeTensorsFile
    do {
        file = try SafeTensorsFile(data: bytes, path: "fuzz.safetensors")
    } catch let e as SafeTensorsError {
        fuzzNote("error: \(e)")
        return 0
    } catch {
        fatalError("SafeTensorsFile threw a non-SafeTensorsError: \(error)")
    }
    _ = file.metadata.count
    for info in file.tensors {
        precondition(info.byteRange.count == info.elementCount * info.dtype.byteSize, "accepted tensor with inconsistent size")
        let raw = try! file.rawBytes(info.name)
        precondition(raw.count == info.byteRange.count)
        for accessor in [{ _ = try file.floats(info.name) }, { _ = try file.doubles(info.name) },
                         { _ = try file.int64s(info.name) }, { _ = try file.floats(info.name, expectShape: info.shape) }] {
            do { try accessor() } catch let e as SafeTensorsError { _ = e.description } catch { fatalError("\(error)") }
        }
    }
    if let missing = try? file.info("\u{0}no such tensor") { fatalError("found \(missing)") }
    fuzzNote("accepted \(file.names.count) tensors, \(file.metadata.count) metadata entries")
    return 0
}
