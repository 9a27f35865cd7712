// libFuzzer target: ImageDataset.loadIDX(images:labels:numClasses:limit:) on a pair of files (each may be gzip).
// Input: [options][limit][u16 images length][images bytes][labels bytes]
//   options bits 0-3: numClasses - 1; bit 4: pass `limit` (the next byte) instead of nil.
import Datasets
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let options = input.byte(), limitByte = input.byte()
    let numClasses = Int(options & 0x0f) + 1
    let limit: Int? = options & 0x10 != 0 ? Int(limitByte) : nil
    let images = FuzzScratch.write(input.chunk(), "images.idx")
    let labels = FuzzScratch.write(input.rest(), "labels.idx")
    do {
        let d = try ImageDataset.loadIDX(images: images, labels: labels, numClasses: numClasses, limit: limit)
        // What the loader accepts must pass the checked initializer too.
        let checked = try! ImageDataset(height: d.height, width: d.width, pixels: d.pixels, labels: d.labels,
                                        numClasses: d.numClasses, maxPixelValue: d.maxPixelValue)
        precondition(checked == d)
        if let limit { precondition(d.count <= limit) }
        if d.count > 0 { _ = d.normalizedImage(d.count - 1); _ = d.classCounts() }
        fuzzNote("loaded \(d.count) images of \(d.height)×\(d.width)")
    } catch let e as DatasetError {
        precondition(e.description.hasPrefix(e.path + ": "), "error without its path: \(e)")
        fuzzNote("error: \(e)")
    } catch {
        fatalError("loadIDX threw a non-DatasetError: \(error)")
    }
    return 0
}
